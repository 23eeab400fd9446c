package oci_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
)

// mountTestOverlay mounts an overlay of lower (with "lowerdir+", as imagesvc
// does) at target, unmounted at cleanup.
func mountTestOverlay(t *testing.T, lowers []string, upper, work, target string) {
	t.Helper()
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	must(t, err)
	defer unix.Close(fsfd)
	for _, l := range lowers {
		must(t, unix.FsconfigSetString(fsfd, "lowerdir+", l))
	}
	must(t, unix.FsconfigSetString(fsfd, "upperdir", upper))
	must(t, unix.FsconfigSetString(fsfd, "workdir", work))
	must(t, unix.FsconfigCreate(fsfd))
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(mfd)
	must(t, unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH))
	t.Cleanup(func() {
		for unix.Unmount(target, 0) == nil {
		}
	})
}

// TestIdmapOverlayRootfs: an image's root-owned files appear as the
// container's root, a container in the pod's user namespace can write its
// rootfs (copy-up through an idmapped layer), and what it writes is its
// own host uid on disk.
func TestIdmapOverlayRootfs(t *testing.T) {
	e := newEnv(t)
	lower := busyboxRootfs(t, e.dir)
	base := usernsBase()
	must(t, os.WriteFile(filepath.Join(lower, "etc", "motd"), []byte("image\n"), 0o644))
	// A layer dir name with a space and a comma: mountinfo escapes both.
	lower2 := filepath.Join(e.dir, "layer 2,x")
	must(t, os.MkdirAll(filepath.Join(lower2, "opt"), 0o755))
	upper, work, target := filepath.Join(e.dir, "upper"), filepath.Join(e.dir, "work"), filepath.Join(e.dir, "merged")
	for _, d := range []string{upper, work, target} {
		must(t, os.Mkdir(d, 0o755))
	}
	mountTestOverlay(t, []string{lower2, lower}, upper, work, target)
	user, _ := podUserNS(t, base)
	must(t, oci.IdmapOverlay(target, user, int(base), int(base)))

	var st unix.Stat_t
	must(t, unix.Stat(filepath.Join(target, "etc", "motd"), &st))
	if st.Uid != base || st.Gid != base {
		t.Errorf("image file through the idmapped rootfs is %d:%d, want %d:%d", st.Uid, st.Gid, base, base)
	}
	must(t, unix.Stat(filepath.Join(target, "opt"), &st))
	if st.Uid != base {
		t.Errorf("second layer's dir is uid %d, want %d", st.Uid, base)
	}
	spec := usernsSpec(t, target, base, "sh", "-c", "stat -c '%u:%g' /etc/motd; echo changed > /etc/motd; touch /new; mkdir /opt/x && echo OK")
	out, st2, err := e.run("idmaprootfs", spec)
	must(t, err)
	if st2.ExitCode() != 0 || !strings.Contains(out, "0:0") || !strings.Contains(out, "OK") {
		t.Fatalf("exit %d, output:\n%s", st2.ExitCode(), out)
	}
	for _, f := range []string{"etc/motd", "new", "opt/x"} {
		must(t, unix.Lstat(filepath.Join(upper, f), &st))
		if st.Uid != base || st.Gid != base {
			t.Errorf("upper %s is %d:%d on disk, want %d:%d", f, st.Uid, st.Gid, base, base)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(lower, "etc", "motd")); string(b) != "image\n" {
		t.Errorf("the image layer changed: %q", b)
	}
	must(t, unix.Lstat(filepath.Join(lower, "etc", "motd"), &st))
	if st.Uid != 0 {
		t.Errorf("the image layer's file is uid %d on disk, want 0", st.Uid)
	}
}

func TestIdmapOverlayRefusesNonOverlay(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	user, _ := podUserNS(t, usernsBase())
	if err := oci.IdmapOverlay(dir, user, 1, 1); err == nil {
		t.Fatal("idmapped a directory that is no overlay mount")
	}
}
