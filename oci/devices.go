package oci

import (
	"bufio"
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
	var mode uint32
	switch d.Type {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		mode = unix.S_IFIFO
	default:
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

// mountCgroups mounts the cgroup hierarchies at target. With a cgroup
// namespace each hierarchy is mounted fresh (rooted at the namespace);
// without one, the container's own cgroup directories are bind-mounted so the
// host's tree stays hidden.
func mountCgroups(root int, dest, target string, o mountOpts, paths map[string]string, cgroupNS bool) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		if cgroupNS {
			return unix.Mount("cgroup2", target, "cgroup2", o.flags, "")
		}
		return bindCgroup(paths[""], target, o.flags)
	}
	if err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("mount cgroup tmpfs: %w", err)
	}
	// target still names the directory under the tmpfs: reopen the top.
	tfd, err := openInRoot(root, dest, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	target = procFd(tfd)
	hiers, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hiers {
		sub := filepath.Join(target, h.name)
		if err := os.Mkdir(sub, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if cgroupNS {
			if err := unix.Mount("cgroup", sub, h.fstype, o.flags, h.opts); err != nil {
				return fmt.Errorf("mount cgroup %s: %w", h.name, err)
			}
			continue
		}
		src := ""
		for _, c := range strings.Split(h.name, ",") {
			if paths[c] != "" {
				src = paths[c]
			}
		}
		if src == "" {
			continue
		}
		if err := bindCgroup(src, sub, o.flags); err != nil {
			return err
		}
	}
	if o.flags&unix.MS_RDONLY != 0 {
		return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755")
	}
	return nil
}

func bindCgroup(src, dst string, flags uintptr) error {
	if src == "" {
		return nil
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind cgroup %s: %w", src, err)
	}
	return unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|flags|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

type cgroupHier struct{ name, fstype, opts string }

func cgroupHierarchies() ([]cgroupHier, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupHier
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		i := 0
		for i < len(fields) && fields[i] != "-" {
			i++
		}
		if i+3 >= len(fields) || !strings.HasPrefix(fields[4], "/sys/fs/cgroup/") {
			continue
		}
		switch fields[i+1] {
		case "cgroup":
			var keep []string
			for _, o := range strings.Split(fields[i+3], ",") {
				if o != "rw" && o != "ro" {
					keep = append(keep, o)
				}
			}
			out = append(out, cgroupHier{filepath.Base(fields[4]), "cgroup", strings.Join(keep, ",")})
		case "cgroup2":
			out = append(out, cgroupHier{filepath.Base(fields[4]), "cgroup2", ""})
		}
	}
	return out, sc.Err()
}
