package imagesvc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// pushFiles pushes an image whose layer i holds etc/layer<i> and, in the
// last layer, etc/top.
func pushFiles(t *testing.T, reg *testRegistry, repo string, layers int) string {
	t.Helper()
	var ls [][]ent
	for i := range layers {
		ents := []ent{{name: "etc/layer" + strconv.Itoa(i), body: "layer " + strconv.Itoa(i)}}
		if i == layers-1 {
			ents = append(ents, ent{name: "etc/top", body: "top"})
		}
		ls = append(ls, ents)
	}
	ref, _ := pushLayers(t, reg, repo, ls...)
	return ref
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir) {
			out = append(out, l)
		}
	}
	return out
}

// An image volume shows every layer's files, refuses writes, keeps the
// snapshots while the image is removed, and is gone with the container.
func TestImageVolume(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	for _, tc := range []struct {
		name   string
		layers int
	}{
		{name: "one layer", layers: 1},
		{name: "three layers", layers: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t, Options{})
			ref := pushFiles(t, reg, "vol:"+strconv.Itoa(tc.layers), tc.layers)
			img, err := s.Pull(context.Background(), ref, Auth{})
			if err != nil {
				t.Fatal(err)
			}
			dirs := []string{s.opts.Root, s.opts.State}
			vols := make([]string, 2)
			for n := range vols {
				if vols[n], err = s.MountImageVolume(img.ID, "c1", n); err != nil {
					t.Fatal(err)
				}
			}
			if again, err := s.MountImageVolume(img.ID, "c1", 0); err != nil || again != vols[0] {
				t.Fatalf("second MountImageVolume: %q %v", again, err)
			}
			for i := range tc.layers {
				if b, err := os.ReadFile(filepath.Join(vols[1], "etc", "layer"+strconv.Itoa(i))); err != nil || string(b) != "layer "+strconv.Itoa(i) {
					t.Errorf("layer %d file: %q %v", i, b, err)
				}
			}
			werr := os.WriteFile(filepath.Join(vols[0], "etc", "new"), []byte("x"), 0o644)
			if !errors.Is(werr, unix.EROFS) {
				t.Errorf("write into the image volume: %v, want EROFS", werr)
			}
			if err := os.Remove(filepath.Join(vols[0], "etc", "top")); !errors.Is(err, unix.EROFS) {
				t.Errorf("remove from the image volume: %v, want EROFS", err)
			}
			var sfs unix.Statfs_t
			if err := unix.Statfs(vols[0], &sfs); err != nil || sfs.Flags&unix.ST_RDONLY == 0 {
				t.Errorf("image volume mount not read-only: flags %#x, %v", sfs.Flags, err)
			}
			// The volume holds its snapshots like a rootfs does.
			if err := s.RemoveImage(ref); err != nil {
				t.Fatal(err)
			}
			if _, err := os.ReadFile(filepath.Join(vols[0], "etc", "top")); err != nil {
				t.Fatalf("image volume lost after image removal: %v", err)
			}
			for i := range 2 {
				if err := s.Remove("c1"); err != nil {
					t.Fatalf("Remove #%d: %v", i, err)
				}
			}
			for _, v := range vols {
				if _, err := os.Stat(v); !os.IsNotExist(err) {
					t.Errorf("volume mount point %s still there: %v", v, err)
				}
			}
			for _, d := range dirs {
				if m := mountsUnder(d); len(m) > 0 {
					t.Errorf("mounts left: %v", m)
				}
			}
			storeEmpty(t, s)
		})
	}
}

func TestImageVolumeBadInput(t *testing.T) {
	requireRoot(t)
	s := newService(t, Options{})
	for _, tc := range []struct {
		name, image, ctr string
		n                int
		want             error
	}{
		{name: "unknown image", image: "sha256:" + strings.Repeat("ab", 32), ctr: "c1", want: errdefs.ErrNotFound},
		{name: "container id with a slash", image: "busybox", ctr: "../c1", want: errdefs.ErrInvalidArgument},
		{name: "container id with the volume separator", image: "busybox", ctr: "c" + volumeSep + "1", want: errdefs.ErrInvalidArgument},
		{name: "negative index", image: "busybox", ctr: "c1", n: -1, want: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.MountImageVolume(tc.image, tc.ctr, tc.n); !errors.Is(err, tc.want) {
				t.Fatalf("MountImageVolume: %v, want %v", err, tc.want)
			}
			if m := mountsUnder(s.opts.State); len(m) > 0 {
				t.Fatalf("mounts left: %v", m)
			}
		})
	}
}
