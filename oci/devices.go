package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func u32(v uint32) *uint32 { return &v }

var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: fm(0o666), UID: u32(0), GID: u32(0)},
}

func fm(m os.FileMode) *os.FileMode { return &m }

// createDevices makes the default devices and the spec's. In a user namespace
// mknod is refused, so the host's node is bind-mounted instead (as runc does).
func createDevices(root int, devs []specs.LinuxDevice, userns bool) error {
	all := append(append([]specs.LinuxDevice{}, defaultDevices...), devs...)
	for _, d := range all {
		if err := createDevice(root, d, userns); err != nil {
			return fmt.Errorf("linux.devices %s: %w", d.Path, err)
		}
	}
	return nil
}

func createDevice(root int, d specs.LinuxDevice, userns bool) error {
	p := filepath.Clean("/" + d.Path)
	if !strings.HasPrefix(p, "/dev/") {
		return invalidf("device path %s is outside /dev", d.Path)
	}
	if userns {
		fd, err := createFileInRoot(root, p)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Mount(d.Path, procFd(fd), "", unix.MS_BIND, "")
	}
	mode, ok := deviceFileType(d.Type)
	if !ok {
		return invalidf("device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	dfd, err := mkdirAllInRoot(root, filepath.Dir(p))
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	dir, err := openInRoot(root, filepath.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	base := filepath.Base(p)
	_ = unix.Unlinkat(dir, base, 0)
	if err := unix.Mknodat(dir, base, mode|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchmodat(dir, base, perm, 0); err != nil { // umask
		return err
	}
	return unix.Fchownat(dir, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

func devSymlinks(root int) error {
	dir, err := mkdirAllInRoot(root, "/dev")
	if err != nil {
		return err
	}
	unix.Close(dir)
	dfd, err := openInRoot(root, "/dev", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dfd, l[1]); err != nil && err != unix.EEXIST {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// deviceFileType is the file type bits of a spec device's type ("c" or "u",
// "b", "p"); false for any other.
func deviceFileType(typ string) (uint32, bool) {
	switch typ {
	case "c", "u":
		return unix.S_IFCHR, true
	case "b":
		return unix.S_IFBLK, true
	case "p":
		return unix.S_IFIFO, true
	}
	return 0, false
}
