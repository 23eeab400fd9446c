package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci/cgroups"
)

// mountCgroups mounts the cgroup hierarchies at target. With a cgroup
// namespace each hierarchy is mounted fresh (rooted at the namespace);
// without one, the container's own cgroup directories are bind-mounted so the
// host's tree stays hidden. hiers is the host's list (sent by the parent),
// or nil to read it here.
func mountCgroups(root int, dest, target string, o mountOpts, paths map[string]string, cgroupNS bool, hiers []cgroupHier) error {
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
	if hiers == nil {
		if hiers, err = cgroupHierarchies(); err != nil {
			return err
		}
	}
	// The binds get their attributes in one recursive mount_setattr at the
	// end rather than a remount each; flags it cannot express take the
	// remounts.
	batch := !cgroupNS && o.flags&^(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RELATIME) == 0
	var bound []string
	for _, h := range hiers {
		sub := filepath.Join(target, h.Name)
		if err := os.Mkdir(sub, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if cgroupNS {
			if err := unix.Mount("cgroup", sub, h.FSType, o.flags, h.Opts); err != nil {
				return fmt.Errorf("mount cgroup %s: %w", h.Name, err)
			}
			continue
		}
		src := hierPath(h, paths)
		if src == "" {
			continue
		}
		if !batch {
			if err := bindCgroup(src, sub, o.flags); err != nil {
				return err
			}
			continue
		}
		if err := unix.Mount(src, sub, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind cgroup %s: %w", src, err)
		}
		bound = append(bound, sub)
	}
	if batch {
		done, err := setCgroupBindAttrs(target, o.flags, bound)
		if done || err != nil {
			return err
		}
	}
	if o.flags&unix.MS_RDONLY != 0 {
		return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755")
	}
	return nil
}

// setCgroupBindAttrs gives the tmpfs at target and the binds under it
// their attributes in one recursive mount_setattr (done: nothing left to
// do), or before Linux 5.12 remounts each bind (the caller still remounts
// the tmpfs).
func setCgroupBindAttrs(target string, flags uintptr, bound []string) (done bool, err error) {
	attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC)
	if flags&unix.MS_RDONLY != 0 {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	err = unix.MountSetattr(-1, target, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.ENOSYS) {
		return false, fmt.Errorf("set cgroup mount attributes: %w", err)
	}
	for _, sub := range bound {
		fl := unix.MS_BIND | unix.MS_REMOUNT | flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
		if err := unix.Mount("", sub, "", fl, ""); err != nil {
			return false, fmt.Errorf("remount cgroup %s: %w", sub, err)
		}
	}
	return false, nil
}

// hierPath is the container's directory in hierarchy h: paths is keyed by
// controller ("cpu", "name=systemd") and "" for cgroup2, while h.Name is
// the mount's directory ("cpu,cpuacct", "systemd", "unified").
func hierPath(h cgroupHier, paths map[string]string) string {
	if h.FSType == "cgroup2" {
		return paths[""]
	}
	for _, c := range append(strings.Split(h.Name, ","), strings.Split(h.Opts, ",")...) {
		if paths[c] != "" {
			return paths[c]
		}
	}
	return ""
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

// cgroupHier is one cgroup hierarchy mounted under /sys/fs/cgroup.
type cgroupHier struct {
	Name   string `json:"name"` // directory under /sys/fs/cgroup
	FSType string `json:"fstype"`
	Opts   string `json:"opts,omitempty"` // super options without rw/ro
}

// cgroupHierarchies lists the hierarchies under /sys/fs/cgroup from the
// cgroup layout, which is read once per process: a long-lived parent sends
// it with every config, so the init does not parse mountinfo.
func cgroupHierarchies() ([]cgroupHier, error) {
	l, err := cgroups.DetectLayout()
	if err != nil {
		return nil, err
	}
	out := []cgroupHier{}
	for _, h := range l.Hierarchies {
		if strings.HasPrefix(h.Mountpoint, "/sys/fs/cgroup/") {
			out = append(out, cgroupHier{filepath.Base(h.Mountpoint), h.FSType, h.Options})
		}
	}
	return out, nil
}

func hasCgroupMount(s *specs.Spec) bool {
	for _, m := range s.Mounts {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			return true
		}
	}
	return false
}
