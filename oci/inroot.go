package oci

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths inside the rootfs are attacker-controlled: every lookup goes through
// openat2(RESOLVE_IN_ROOT), so ".." and absolute symlinks stay inside root.
func openInRoot(root int, p string, flags uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		rel := strings.TrimPrefix(filepath.Clean("/"+p), "/")
		if rel == "" {
			rel = "."
		}
		fd, err := unix.Openat2(root, rel, &how)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// mkdirAllInRoot creates p (and parents) inside root, returning an O_PATH fd.
// Each missing component is made with mkdirat relative to its parent opened
// in root, so a symlink swapped in concurrently is followed only inside root.
func mkdirAllInRoot(root int, p string) (int, error) {
	p = filepath.Clean("/" + p)
	if fd, err := openInRoot(root, p, unix.O_PATH|unix.O_DIRECTORY); err == nil {
		return fd, nil
	}
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for _, part := range parts {
		next := filepath.Join(cur, part)
		fd, err := openInRoot(root, next, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil {
			unix.Close(fd)
			cur = next
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("open %s in root: %w", next, err)
		}
		pfd, err := openInRoot(root, cur, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			return -1, fmt.Errorf("open %s in root: %w", cur, err)
		}
		err = unix.Mkdirat(pfd, part, 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("mkdir %s in root: %w", next, err)
		}
		cur = next
	}
	return openInRoot(root, p, unix.O_PATH|unix.O_DIRECTORY)
}

// createFileInRoot makes p a file (for a file bind mount or a device),
// returning an O_PATH fd of it.
func createFileInRoot(root int, p string) (int, error) {
	p = filepath.Clean("/" + p)
	if fd, err := openInRoot(root, p, unix.O_PATH); err == nil {
		return fd, nil
	}
	dfd, err := mkdirAllInRoot(root, filepath.Dir(p))
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	// Reopen the O_PATH dir for real to create in it.
	dir, err := openInRoot(root, filepath.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return -1, fmt.Errorf("open %s in root: %w", filepath.Dir(p), err)
	}
	defer unix.Close(dir)
	fd, err := unix.Openat(dir, filepath.Base(p), unix.O_CREAT|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create %s in root: %w", p, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return openInRoot(root, p, unix.O_PATH)
}

func procFd(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }
