package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// fakeVolumeImages serves image volumes from a plain directory tree.
type fakeVolumeImages struct {
	*fakeImages
	root string
}

func (f *fakeVolumeImages) MountImageVolume(ctx context.Context, imageID, id string, n int) (string, error) {
	p := filepath.Join(f.root, id+"-"+strconv.Itoa(n))
	if err := os.MkdirAll(filepath.Join(p, "etc"), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(filepath.Join(p, "etc", "passwd"), nil, 0o644)
}

func bindOnItself(t *testing.T, dir string, prop uintptr) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount("", dir, "", prop, ""); err != nil {
		t.Fatal(err)
	}
}

func TestPrepareMountsHostPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	dir := t.TempDir()
	// Registered first, so it runs after every unmount below.
	t.Cleanup(func() {
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), dir) {
			t.Errorf("mounts left under %s", dir)
		}
	})
	real := filepath.Join(dir, "real")
	mustOK(t, os.Mkdir(real, 0o755))
	mustOK(t, os.Symlink(real, filepath.Join(dir, "link")))
	mustOK(t, os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "dangling")))
	shared := filepath.Join(dir, "shared")
	bindOnItself(t, shared, unix.MS_SHARED)
	// A slave: a bind of a shared mount (a peer), then made its slave.
	slave := filepath.Join(dir, "slave")
	mustOK(t, os.Mkdir(slave, 0o755))
	mustOK(t, unix.Mount(shared, slave, "", unix.MS_BIND, ""))
	t.Cleanup(func() { unix.Unmount(slave, unix.MNT_DETACH) })
	mustOK(t, unix.Mount("", slave, "", unix.MS_SLAVE, ""))
	private := filepath.Join(dir, "private")
	bindOnItself(t, private, unix.MS_PRIVATE)

	const (
		priv = runtime.MountPropagation_PROPAGATION_PRIVATE
		h2c  = runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		bidi = runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL
	)
	for _, tc := range []struct {
		name, host, want string
		prop             runtime.MountPropagation
		err              error
	}{
		{name: "symlink resolved on the host", host: filepath.Join(dir, "link"), want: real, prop: priv},
		{name: "missing path created", host: filepath.Join(dir, "new", "dir"), want: filepath.Join(dir, "new", "dir"), prop: priv},
		{name: "dangling symlink", host: filepath.Join(dir, "dangling"), prop: priv, err: errdefs.ErrNotFound},
		{name: "relative path refused", host: "rel/dir", prop: priv, err: errdefs.ErrInvalidArgument},
		{name: "bidirectional on a shared mount", host: shared, want: shared, prop: bidi},
		{name: "bidirectional on a slave mount refused", host: slave, prop: bidi, err: errdefs.ErrFailedPrecondition},
		{name: "bidirectional on a private mount refused", host: private, prop: bidi, err: errdefs.ErrFailedPrecondition},
		{name: "host-to-container on a slave mount", host: slave, want: slave, prop: h2c},
		{name: "host-to-container on a shared mount", host: shared, want: shared, prop: h2c},
		{name: "host-to-container on a private mount refused", host: private, prop: h2c, err: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{}
			m := &runtime.Mount{ContainerPath: "/v", HostPath: tc.host, Propagation: tc.prop}
			cfg, st, err := s.prepareMounts(context.Background(), "c1", &runtime.ContainerConfig{Mounts: []*runtime.Mount{m}})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Mounts[0].HostPath; got != tc.want {
				t.Errorf("spec host path %q, want %q", got, tc.want)
			}
			if st[0].HostPath != tc.host || st[0].Propagation != tc.prop {
				t.Errorf("status mount %v, want the kubelet's", st[0])
			}
			if fi, err := os.Stat(tc.want); err != nil || !fi.IsDir() {
				t.Errorf("host path %s: %v", tc.want, err)
			}
		})
	}
}

func TestPrepareImageVolumes(t *testing.T) {
	dir := t.TempDir()
	vol := filepath.Join(dir, "c1-0")
	mustOK(t, os.MkdirAll(filepath.Join(vol, "etc"), 0o755))
	mustOK(t, os.WriteFile(filepath.Join(vol, "etc", "passwd"), nil, 0o644))
	mustOK(t, os.Symlink("../../../..", filepath.Join(vol, "up")))
	s := &Server{imageDeps: &fakeVolumeImages{fakeImages: &fakeImages{}, root: dir}}
	img := func(ref string) *runtime.ImageSpec {
		return &runtime.ImageSpec{Image: ref, UserSpecifiedImage: "busybox"}
	}
	for _, tc := range []struct {
		name string
		m    *runtime.Mount
		want string
		err  error
	}{
		{name: "whole image", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("busybox")}, want: vol},
		{name: "sub path", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("busybox"), ImageSubPath: "etc"},
			want: filepath.Join(vol, "etc")},
		{name: "sub path through a symlink stays inside", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("busybox"),
			ImageSubPath: "up/etc"}, want: filepath.Join(vol, "etc")},
		{name: "missing sub path", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("busybox"), ImageSubPath: "nope"},
			err: errdefs.ErrInvalidArgument},
		{name: "sub path climbing out", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("busybox"), ImageSubPath: "../c1-0/etc"},
			err: errdefs.ErrInvalidArgument},
		{name: "absolute sub path", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("busybox"), ImageSubPath: "/etc"},
			err: errdefs.ErrInvalidArgument},
		{name: "read-write refused", m: &runtime.Mount{ContainerPath: "/v", Image: img("busybox")}, err: errdefs.ErrInvalidArgument},
		{name: "image not pulled", m: &runtime.Mount{ContainerPath: "/v", Readonly: true, Image: img("missing")}, err: errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, st, err := s.prepareMounts(context.Background(), "c1", &runtime.ContainerConfig{Mounts: []*runtime.Mount{tc.m}})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Mounts[0]
			if got.HostPath != tc.want || got.Image != nil || !got.Readonly {
				t.Errorf("spec mount %v, want a read-only bind of %s", got, tc.want)
			}
			if ref := st[0].GetImage().GetImageRef(); !strings.HasPrefix(ref, "sha256:") {
				t.Errorf("status image_ref %q, want the image id", ref)
			}
			if tc.m.Image.ImageRef != "" {
				t.Error("the kubelet's mount was modified")
			}
		})
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// This kernel (6.18) has mount_setattr: recursive read-only is claimed.
func TestRecursiveReadOnlyClaimed(t *testing.T) {
	if !recursiveReadOnlySupported() {
		t.Fatal("mount_setattr not detected on a kernel that has it")
	}
}

// Through CreateContainer: the status reports the kubelet's mounts with the
// image volume's image ref, also after a daemon restart; a bad image volume
// fails the create and leaves nothing.
func TestCreateContainerWithVolumes(t *testing.T) {
	e := newEnv(t)
	e.s.imageDeps = &fakeVolumeImages{fakeImages: e.images, root: t.TempDir()}
	host := t.TempDir()
	mounts := []*runtime.Mount{
		{ContainerPath: "/data", HostPath: host},
		{ContainerPath: "/img", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: "etc"},
	}
	cfg := func(name string, ms ...*runtime.Mount) *runtime.ContainerConfig {
		return &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name},
			Image: &runtime.ImageSpec{Image: "busybox"}, Command: []string{"true"}, Mounts: ms}
	}
	resp, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: "pod1", Config: cfg("vols", mounts...)})
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		got := e.status(t, resp.ContainerId).GetMounts()
		if len(got) != 2 || got[0].HostPath != host || got[1].HostPath != "" || got[1].ImageSubPath != "etc" ||
			!strings.HasPrefix(got[1].GetImage().GetImageRef(), "sha256:") {
			t.Fatalf("status mounts %v", got)
		}
	}
	check()
	e.s.Close()
	e.start(t)
	e.s.imageDeps = &fakeVolumeImages{fakeImages: e.images, root: t.TempDir()}
	check()

	bad := &runtime.Mount{ContainerPath: "/img", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: "nope"}
	_, err = e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: "pod1", Config: cfg("bad", bad)})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("create with a missing sub path: %v", err)
	}
	if n := len(e.s.listContainers(nil)); n != 1 {
		t.Fatalf("%d containers after a failed create, want 1", n)
	}
}
