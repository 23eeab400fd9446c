package oci

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// Bind mounts of a container in a user namespace are prepared here, in the
// parent, as detached mount trees (open_tree) that the init attaches with
// move_mount. Two reasons: an idmapped mount (mount_setattr with
// MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN in the user namespace of the
// source's filesystem, the host's, which the init no longer has; and the
// init runs as the namespace's root, which the host sees as an unprivileged
// uid that may not even traverse the source's directories (a pod dir is
// 0700). runc 1.2 does the same for idmapped mounts.

// isBind says whether m is a bind mount, by type or option.
func isBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	return m.Type == "" && (slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind"))
}

// validateIdmapMounts checks the mounts that carry uid/gid mappings
// (runtime-spec v1.1 idmapped mounts): bind mounts only, both maps given.
func validateIdmapMounts(s *specs.Spec) error {
	for i, m := range s.Mounts {
		if len(m.UIDMappings) == 0 && len(m.GIDMappings) == 0 {
			continue
		}
		if !isBind(m) {
			return errdefs.InvalidArgument("mounts[%d] %s: uidMappings/gidMappings are only supported on bind mounts", i, m.Destination)
		}
		if len(m.UIDMappings) == 0 || len(m.GIDMappings) == 0 {
			return errdefs.InvalidArgument("mounts[%d] %s: uidMappings and gidMappings must be given together", i, m.Destination)
		}
	}
	return nil
}

// preparedMounts are the detached trees handed to the init.
type preparedMounts struct {
	files []*os.File // in spec.Mounts order, nil where the init mounts by path
	ns    []*UserNS  // made for mappings other than the container's
}

func (p *preparedMounts) close() {
	for _, f := range p.files {
		if f != nil {
			f.Close()
		}
	}
	for _, n := range p.ns {
		n.Close()
	}
}

// any says whether there is a tree to hand over.
func (p *preparedMounts) any() bool {
	return slices.ContainsFunc(p.files, func(f *os.File) bool { return f != nil })
}

// prepareMounts opens the bind mounts of spec that the init cannot do by
// path: all of them in a user namespace, and the idmapped ones.
func (r *Runtime) prepareMounts(spec *specs.Spec) (_ *preparedMounts, retErr error) {
	p := &preparedMounts{files: make([]*os.File, len(spec.Mounts))}
	userns := inUserNS(spec.Linux)
	defer func() {
		if retErr != nil {
			p.close()
		}
	}()
	var own *os.File // the container's joined user namespace, opened once
	defer func() {
		if own != nil {
			own.Close()
		}
	}()
	for i, m := range spec.Mounts {
		idmapped := len(m.UIDMappings) > 0
		if !isBind(m) || (!userns && !idmapped) {
			continue
		}
		f, err := openTree(m)
		if err != nil {
			return nil, fmt.Errorf("mounts[%d] %s: %w", i, m.Destination, err)
		}
		p.files[i] = f
		if !idmapped {
			continue
		}
		nsf, err := r.mountUserNS(spec.Linux, m, &own, p)
		if err != nil {
			return nil, fmt.Errorf("mounts[%d] %s: %w", i, m.Destination, err)
		}
		if err := idmapTree(f, nsf, slices.Contains(m.Options, "rbind")); err != nil {
			return nil, fmt.Errorf("mounts[%d] %s: %w", i, m.Destination, err)
		}
	}
	return p, nil
}

// mountUserNS returns a user namespace whose mappings are m's: the one the
// container joins when they are the container's (the usual case: the
// kubelet gives every mount of a pod the pod's mappings), else a new one.
func (r *Runtime) mountUserNS(l *specs.Linux, m specs.Mount, own **os.File, p *preparedMounts) (*os.File, error) {
	if slices.Equal(m.UIDMappings, l.UIDMappings) && slices.Equal(m.GIDMappings, l.GIDMappings) {
		for _, ns := range l.Namespaces {
			if ns.Type != specs.UserNamespace || ns.Path == "" {
				continue
			}
			if *own == nil {
				f, err := os.Open(ns.Path)
				if err != nil {
					return nil, errdefs.InvalidArgument("linux.namespaces user path: %v", err)
				}
				*own = f
			}
			return *own, nil
		}
	}
	u, err := NewUserNS(r.exePath(), m.UIDMappings, m.GIDMappings)
	if err != nil {
		return nil, err
	}
	p.ns = append(p.ns, u)
	return u.File, nil
}

// exePath is a path to this binary that execs the sealed copy.
func (r *Runtime) exePath() string {
	return "/proc/self/exe"
}

// openTree clones m's source as a detached tree (recursive for rbind).
func openTree(m specs.Mount) (*os.File, error) {
	fl := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC
	if slices.Contains(m.Options, "rbind") {
		fl |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, m.Source, uint(fl))
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, errdefs.InvalidArgument("source %s: %v", m.Source, err)
		}
		return nil, fmt.Errorf("open_tree %s: %w", m.Source, err)
	}
	return os.NewFile(uintptr(fd), m.Source), nil
}

// idmapTree maps the ids of a detached tree through userns. A filesystem
// that cannot be idmapped is an error, never a silent plain mount: the
// container would see (and write) the files with other owners than asked.
func idmapTree(tree, userns *os.File, recursive bool) error {
	fl := unix.AT_EMPTY_PATH
	if recursive {
		fl |= unix.AT_RECURSIVE
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(int(tree.Fd()), "", uint(fl), attr); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
			return errdefs.FailedPrecondition("%s: the filesystem of %s cannot be idmapped here (%v)", errNoIdmap, tree.Name(), err)
		}
		return fmt.Errorf("idmap %s: %w", tree.Name(), err)
	}
	return nil
}

// passMounts hands the prepared trees to the init as inherited fds and
// returns their numbers there (-1: none), in spec.Mounts order.
func passMounts(cmd *exec.Cmd, p *preparedMounts) []int {
	if p == nil || !p.any() {
		return nil
	}
	fds := make([]int, len(p.files))
	for i, f := range p.files {
		fds[i] = -1
		if f != nil {
			fds[i] = 3 + len(cmd.ExtraFiles)
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
	}
	p.files = nil // closed with the ExtraFiles (closeChildFiles)
	return fds
}

// attachTree is the init's side: it attaches the tree fd on the mount
// point at, which it made.
func attachTree(tree int, at int) error {
	if err := unix.MoveMount(tree, "", at, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach mount: %w", err)
	}
	unix.Close(tree)
	return nil
}

// treeIsDir says whether a prepared tree's root is a directory.
func treeIsDir(tree int) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return false, fmt.Errorf("stat mount source: %w", err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// mountFd is the prepared tree of spec.Mounts[i], -1 if none.
func (c *initConfig) mountFd(i int) int {
	if i < len(c.MountFds) {
		return c.MountFds[i]
	}
	return -1
}

// bindSourceIsDir says whether a bind source is a directory, from its
// prepared tree if any (the init may not even see the host path).
func bindSourceIsDir(src string, tree int) (bool, error) {
	if tree >= 0 {
		return treeIsDir(tree)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return false, invalidf("source %s: %v", src, err)
	}
	return fi.IsDir(), nil
}

// handover is what a create passes to its init besides the config: the
// prepared mount trees and, for an init that joins a user namespace, the
// rootfs as its working directory (rootByCwd).
type handover struct {
	mountFds    []int
	rootFromCwd bool
	prepared    *preparedMounts
}

func (h *handover) close() { h.prepared.close() }

// handOver prepares the mounts and the working directory of the init that
// cmd will start.
func (r *Runtime) handOver(cmd *exec.Cmd, plan *nsPlan, spec *specs.Spec, rootfs string) (*handover, error) {
	p, err := r.prepareMounts(spec)
	if err != nil {
		return nil, err
	}
	return &handover{mountFds: passMounts(cmd, p), rootFromCwd: rootByCwd(cmd, plan, rootfs), prepared: p}, nil
}
