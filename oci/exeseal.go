package oci

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedExe returns the init binary as a file nobody can write. The
// container's processes can reach the init's /proc/<pid>/exe while it runs
// inside their namespaces (create, exec); with the real binary they could
// reopen it for writing after we exit and replace cri-server on the host
// (CVE-2019-5736).
//
// First choice: the binary seen through a detached read-only bind mount
// (open_tree + mount_setattr): a write open fails with EROFS whatever the
// caller's capabilities, the mount is in no namespace so nobody can remount
// it, nothing appears in mountinfo, and nothing is copied, which matters to
// the command line (one Runtime per invocation). Fallback on kernels without
// the new mount API: a sealed memfd copy, made once per Runtime.
func sealedExe(src string) (*os.File, error) {
	if f, err := roMountExe(src); err == nil {
		return f, nil
	}
	return memfdExe(src)
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
	fd, err := unix.MemfdCreate("cri-server-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create memfd: %w", err)
	}
	out := os.NewFile(uintptr(fd), "cri-server-init")
	fi, err := in.Stat()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("stat init binary: %w", err)
	}
	// copy_file_range does not work into a memfd; sendfile does, in one call
	// per 2 GiB.
	for n := fi.Size(); n > 0; {
		w, err := unix.Sendfile(fd, int(in.Fd()), nil, int(n))
		if err != nil || w == 0 {
			if _, err2 := io.Copy(out, in); err2 != nil {
				out.Close()
				return nil, fmt.Errorf("copy init binary: %w", err2)
			}
			break
		}
		n -= int64(w)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		out.Close()
		return nil, fmt.Errorf("seal init binary: %w", err)
	}
	return out, nil
}
