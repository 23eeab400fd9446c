package oci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sealedExe returns the init binary as a file nobody can write. The
// container's processes can reach the init's /proc/<pid>/exe while it runs
// inside their namespaces (create, exec); with the real binary they could
// reopen it for writing after we exit and replace cri-server on the host
// (CVE-2019-5736).
//
// First choice: src itself when it already is a sealed memfd (the embedded
// shim that SealBinary made, which is also /proc/self/exe of every monitor):
// it is shared, where a copy would cost its size once per monitor. Then the
// binary seen through a detached read-only bind mount (open_tree +
// mount_setattr): a write open fails with EROFS whatever the caller's
// capabilities, the mount is in no namespace so nobody can remount it,
// nothing appears in mountinfo, and nothing is copied, which matters to the
// command line (one Runtime per invocation). Fallback on kernels without the
// new mount API: a sealed memfd copy, made once per Runtime.
func sealedExe(src string) (*os.File, error) {
	if f, err := openSealed(src); err == nil {
		return f, nil
	}
	if f, err := openSelfReadOnly(src); err == nil {
		return f, nil
	}
	if f, err := roMountExe(src); err == nil {
		return f, nil
	}
	return memfdExe(src)
}

// allSeals make a memfd immutable for good: no write, no resize, no unsealing.
const allSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

var errNotSealed = errors.New("not a sealed memfd")

func openSealed(src string) (*os.File, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open init binary: %w", err)
	}
	// F_GET_SEALS fails with EINVAL on anything but a memfd (or shmem file).
	got, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || got&allSeals != allSeals {
		f.Close()
		return nil, errNotSealed
	}
	return f, nil
}

// openSelfReadOnly returns /proc/self/exe when it is src executed through
// a read-only mount (the command line's shim, which cmd/cri-server
// executes so): sealed already, no mount of our own to make.
func openSelfReadOnly(src string) (*os.File, error) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	var fs unix.Statfs_t
	var a, b unix.Stat_t
	if unix.Fstatfs(int(f.Fd()), &fs) != nil || fs.Flags&unix.ST_RDONLY == 0 ||
		unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(src, &b) != nil || a.Dev != b.Dev || a.Ino != b.Ino || a.Size != b.Size {
		f.Close()
		return nil, errNotSealed
	}
	return f, nil
}

func roMountExe(src string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("clone init binary mount: %w", err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("make init binary mount read-only: %w", err)
	}
	return os.NewFile(uintptr(fd), "cri-server-init"), nil
}

func memfdExe(src string) (*os.File, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("open init binary: %w", err)
	}
	defer in.Close()
	out, err := newExecMemfd("cri-server-init")
	if err != nil {
		return nil, err
	}
	fi, err := in.Stat()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("stat init binary: %w", err)
	}
	// copy_file_range does not work into a memfd; sendfile does, in one call
	// per 2 GiB.
	for n := fi.Size(); n > 0; {
		w, err := unix.Sendfile(int(out.Fd()), int(in.Fd()), nil, int(n))
		if err != nil || w == 0 {
			if _, err2 := io.Copy(out, in); err2 != nil {
				out.Close()
				return nil, fmt.Errorf("copy init binary: %w", err2)
			}
			break
		}
		n -= int64(w)
	}
	if err := addSeals(out); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// SealBinary writes an executable (cri-server's embedded shim) into a
// sealed memfd and returns it: a file that no process, root included, can
// ever modify, to be executed as /proc/<pid>/fd/<fd> and passed as
// Config.InitBinary. A Runtime given such a file shares it instead of
// copying it, and so do the monitors executed from it.
//
// content is read once, so its whole pages are then paged out of the
// caller's resident set: an embedded binary's pages (file-backed) would
// otherwise stay in the daemon's RSS for its whole life. MADV_PAGEOUT
// keeps the content: a page touched again is read back.
func SealBinary(name string, content []byte) (*os.File, error) {
	if len(content) == 0 {
		return nil, fmt.Errorf("seal binary %s: empty", name)
	}
	f, err := newExecMemfd(name)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return nil, fmt.Errorf("write binary %s: %w", name, err)
	}
	if err := addSeals(f); err != nil {
		f.Close()
		return nil, err
	}
	pageOut(content)
	return f, nil
}

// pageOut asks the kernel to reclaim b's whole pages; kernels before 5.4,
// and anonymous pages without swap, ignore it.
func pageOut(b []byte) {
	pg := os.Getpagesize()
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	off := (pg - int(addr%uintptr(pg))) % pg
	if off >= len(b) {
		return
	}
	b = b[off:]
	if n := len(b) &^ (pg - 1); n > 0 {
		_ = unix.Madvise(b[:n], unix.MADV_PAGEOUT)
	}
}

// newExecMemfd creates a sealable memfd that may be executed. MFD_EXEC
// keeps it executable where vm.memfd_noexec=1 would seal it no-exec by
// default; kernels before 6.3 do not know the flag and get none.
func newExecMemfd(name string) (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(name, flags|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("create memfd: %w", err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

func addSeals(f *os.File) error {
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, allSeals); err != nil {
		return fmt.Errorf("seal %s: %w", f.Name(), err)
	}
	return nil
}
