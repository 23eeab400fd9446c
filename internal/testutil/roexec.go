package testutil

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReexecReadOnly re-executes the test binary through a detached read-only
// mount of itself, once, as cmd/cri-server executes the shim: a process
// whose /proc/self/exe nobody can write may fork container inits (the
// oci package's fast init); a test binary on disk may not. It returns
// when already so executed, or when the kernel lacks the mount API.
func ReexecReadOnly() {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return
	}
	var st unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
		f.Close()
		return
	}
	f.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(tree)
		return
	}
	argv, err := syscall.SlicePtrFromStrings(os.Args)
	if err != nil {
		return
	}
	envv, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		return
	}
	empty, _ := syscall.BytePtrFromString("")
	// Only the calling thread survives execveat; the Go runtime's others
	// are ended by the kernel, as with syscall.Exec.
	_, _, _ = unix.Syscall6(unix.SYS_EXECVEAT, uintptr(tree), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
	unix.Close(tree)
}
