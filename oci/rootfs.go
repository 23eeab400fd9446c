package oci

import (
	"errors"

	"fmt"
	securejoin "github.com/cyphar/filepath-securejoin"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupRootfs mounts everything of the spec under the rootfs and pivots into
// it. It runs in the init's fresh mount namespace, so nothing it mounts is
// visible on the host and everything goes away with the namespace.
func setupRootfs(cfg *initConfig, newNS map[specs.LinuxNamespaceType]bool, conn syncConn) error {
	spec := cfg.Spec
	if cfg.RootFromCwd {
		if err := rootFromCwd(cfg); err != nil {
			return err
		}
	}
	if err := prepareRootPropagation(cfg.Rootfs, spec.Linux.RootfsPropagation); err != nil {
		return err
	}
	if !cfg.RootFromCwd {
		if err := unix.Mount(cfg.Rootfs, cfg.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind rootfs: %w", err)
		}
	}
	root, err := unix.Open(cfg.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(root)
	userns := newNS[specs.UserNamespace] || joinsUserNS(spec.Linux)
	devBind := false
	for i, m := range spec.Mounts {
		if filepath.Clean(m.Destination) == "/dev" && m.Type == "bind" {
			devBind = true
		}
		if err := mountOne(root, cfg, m, newNS[specs.CgroupNamespace], cfg.mountFd(i)); err != nil {
			return fmt.Errorf("mounts[%d] %s: %w", i, m.Destination, err)
		}
	}
	if !devBind {
		if err := createDevices(root, spec.Linux.Devices, userns); err != nil {
			return err
		}
		if err := devSymlinks(root); err != nil {
			return err
		}
	}
	if err := conn.hooks(spec); err != nil {
		return err
	}
	return pivotRoot(cfg.Rootfs)
}

// mountOne mounts m with its destination resolved inside root.
func mountOne(root int, cfg *initConfig, m specs.Mount, cgroupNS bool, tree int) error {
	dest := filepath.Clean(m.Destination)
	if err := checkProcSys(dest, m.Type); err != nil {
		return err
	}
	// Resolve symlinks (even dangling ones) scoped to the root, so the mount
	// point is created where the link points inside the root; openat2 below
	// still guards against a link swapped in meanwhile.
	full, err := securejoin.SecureJoin(cfg.Rootfs, dest)
	if err != nil {
		return invalidf("destination %s: %v", dest, err)
	}
	dest = "/" + strings.TrimPrefix(strings.TrimPrefix(full, cfg.Rootfs), "/")
	if err := checkProcSys(dest, m.Type); err != nil {
		return err
	}
	o := parseMountOpts(m.Options)
	typ := m.Type
	if typ == "" && o.flags&unix.MS_BIND != 0 {
		typ = "bind"
	}
	var fd int
	switch typ {
	case "bind":
		src := m.Source
		isDir, serr := bindSourceIsDir(src, tree)
		if serr != nil {
			return serr
		}
		if isDir {
			fd, err = mkdirAllInRoot(root, dest)
		} else {
			fd, err = createFileInRoot(root, dest)
		}
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		target := procFd(fd)
		if tree >= 0 {
			if err := attachTree(tree, fd); err != nil {
				return err
			}
		} else if err := unix.Mount(src, target, "", unix.MS_BIND|(o.flags&unix.MS_REC), ""); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		// The fd still names the file under the new mount; remounts and
		// propagation must reach the mount itself, so open it again.
		nfd, err := openInRoot(root, dest, unix.O_PATH)
		if err != nil {
			return err
		}
		defer unix.Close(nfd)
		fd = nfd
		target = procFd(fd)
		if rest := o.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
			fl := unix.MS_BIND | unix.MS_REMOUNT | rest | statfsFlags(target)&^unix.MS_RDONLY | rest
			if err := unix.Mount("", target, "", fl, ""); err != nil {
				return fmt.Errorf("remount %s: %w", dest, err)
			}
		}
	case "cgroup", "cgroup2":
		fd, err = mkdirAllInRoot(root, dest)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := mountCgroups(root, dest, procFd(fd), o, cfg.CgroupPaths, cgroupNS, cfg.CgroupMounts); err != nil {
			return err
		}
		// The propagation and attributes below apply to the new mount on top.
		unix.Close(fd)
		if fd, err = openInRoot(root, dest, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return err
		}
	default:
		if typ == "proc" || typ == "sysfs" {
			// An existing symlink at /proc would redirect the mount.
			if lfd, lerr := unix.Openat2(root, strings.TrimPrefix(dest, "/"), &unix.OpenHow{
				Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS}); lerr == nil {
				unix.Close(lfd)
			} else if !errors.Is(lerr, unix.ENOENT) {
				return invalidf("destination %s: %v", dest, lerr)
			}
		}
		fd, err = mkdirAllInRoot(root, dest)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Mount(m.Source, procFd(fd), typ, o.flags, joinData(o.data)); err != nil {
			return fmt.Errorf("mount %s: %w", typ, err)
		}
		if len(o.propFlags) > 0 || o.rec != nil {
			// The fd names the directory under the new mount; propagation
			// and attributes must reach the mount itself.
			nfd, err := openInRoot(root, dest, unix.O_PATH|unix.O_DIRECTORY)
			if err != nil {
				return err
			}
			defer unix.Close(nfd)
			fd = nfd
		}
	}
	target := procFd(fd)
	for _, pf := range o.propFlags {
		if err := unix.Mount("", target, "", pf, ""); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	if o.rec != nil {
		if err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, o.rec); err != nil {
			return fmt.Errorf("set recursive mount attributes: %w", err)
		}
	}
	return nil
}

// procAllowed are the /proc files a container may over-mount (lxcfs).
var procAllowed = map[string]bool{"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true,
	"/proc/stat": true, "/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true,
	"/proc/slabinfo": true, "/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true}

// checkProcSys refuses mounts over /proc or /sys contents: a bind over
// /proc/self/... or a proc mounted elsewhere could hide what we later write
// (sysctl, masked paths) or hand out host files.
func checkProcSys(dest, typ string) error {
	if typ == "proc" {
		if dest != "/proc" {
			return invalidf("proc may only be mounted at /proc")
		}
		return nil
	}
	if strings.HasPrefix(dest, "/proc/") && !procAllowed[dest] {
		return invalidf("mounting over %s is not allowed", dest)
	}
	if dest == "/proc" {
		return invalidf("only proc may be mounted at /proc")
	}
	return nil
}

func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldroot)
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// The old root is stacked on the new one. "." may name either (the
	// kernel does not promise), and making the new root's tree rslave would
	// cut Bidirectional volumes from the host: go to the old root by fd,
	// as runc does.
	if err := unix.Fchdir(oldroot); err != nil {
		return fmt.Errorf("fchdir old root: %w", err)
	}
	// rslave, so that detaching it does not propagate to the host.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// finishRootfs runs after pivot_root (and sysctl): masked and read-only
// paths, root propagation and a read-only root.
func finishRootfs(spec *specs.Spec) error {
	for _, p := range spec.Linux.MaskedPaths {
		if err := maskPath(p); err != nil {
			return fmt.Errorf("linux.maskedPaths %s: %w", p, err)
		}
	}
	for _, p := range spec.Linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return fmt.Errorf("linux.readonlyPaths %s: %w", p, err)
		}
	}
	if pr := spec.Linux.RootfsPropagation; pr != "" {
		f, ok := propOpts[pr]
		if !ok {
			return invalidf("linux.rootfsPropagation: unknown %q", pr)
		}
		if err := unix.Mount("", "/", "", f, ""); err != nil {
			return fmt.Errorf("set rootfs propagation: %w", err)
		}
	}
	if spec.Root.Readonly {
		fl := unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | statfsFlags("/")
		if err := unix.Mount("", "/", "", fl, ""); err != nil {
			return fmt.Errorf("remount root read-only: %w", err)
		}
	}
	return nil
}

func maskPath(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
	}
	return unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	fl := unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | statfsFlags(p)
	return unix.Mount("", p, "", fl, "")
}
