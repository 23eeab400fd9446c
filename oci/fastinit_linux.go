package oci

/*
#cgo CFLAGS: -Wall -O2
#include <stdlib.h>
#include "fastinit.h"
*/
import "C"

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// The fast init: for the specs it accepts (fastRefusal), the container init
// is a fork of the calling process running fastinit.c on a plan laid out
// here, instead of this binary re-executed as a Go init (InitMain). That
// spares the init an exec, static libc's start, the Go runtime's start and
// the config's decoding, and the teardown of a Go address space at its
// final exec: most of a create's CPU. Everything else (user namespaces,
// joins of mount/user/cgroup/time namespaces, hooks the init runs or
// waits for, LSM labels, personality, scheduler, I/O priority) takes the
// Go init, as does every spec when GoInitEnv=1.

// GoInitEnv=1 in the runtime's environment makes every create use the Go
// init (for tests and comparisons).
const GoInitEnv = "CRI_SERVER_GO_INIT"

// fastRefusal says why spec needs the Go init, "" if the fast one serves.
func (r *Runtime) fastRefusal(spec *specs.Spec, plan *nsPlan) string {
	p, l := spec.Process, spec.Linux
	switch {
	case !r.exeImmutable:
		// The fork's /proc/<pid>/exe is this binary: a container process
		// executing /proc/self/exe at the init's final exec would reach it.
		return "runtime binary writable"
	case os.Getenv(GoInitEnv) == "1":
		return GoInitEnv
	case inUserNS(l) || len(l.UIDMappings)+len(l.GIDMappings) > 0:
		return "user namespace"
	case len(plan.nsenter) > 0 || plan.unshare != 0 || plan.timeOffsets != "":
		return "namespace joined by the init"
	case plan.cloneFlags&unix.CLONE_NEWNS == 0:
		return "no mount namespace"
	case p.ApparmorProfile != "" || p.SelinuxLabel != "" || l.Personality != nil || p.IOPriority != nil || p.Scheduler != nil:
		return "process attribute"
	}
	if h := spec.Hooks; h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer) > 0 { //nolint:staticcheck
		return "hooks"
	}
	if _, ok := propOpts[l.RootfsPropagation]; l.RootfsPropagation != "" && !ok {
		return "rootfs propagation"
	}
	for _, m := range spec.Mounts {
		o := parseMountOpts(m.Options)
		switch {
		case len(m.UIDMappings)+len(m.GIDMappings) > 0:
			return "idmapped mount"
		case m.Type == "" && o.flags&unix.MS_BIND == 0:
			return "mount without a type"
		case (m.Type == "cgroup" || m.Type == "cgroup2") && cgroup2Root() && plan.cloneFlags&unix.CLONE_NEWCGROUP == 0:
			return "cgroup2 bind"
		}
	}
	return ""
}

var (
	cgroup2Once sync.Once
	cgroup2     bool
)

// cgroup2Root says whether /sys/fs/cgroup is a cgroup2 mount (pure v2).
func cgroup2Root() bool {
	cgroup2Once.Do(func() {
		var st unix.Statfs_t
		cgroup2 = unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	})
	return cgroup2
}

var (
	lastCapOnce sync.Once
	lastCapVal  int
)

func lastCapCached() int {
	lastCapOnce.Do(func() { lastCapVal = lastCap() })
	return lastCapVal
}

// selfExeImmutable says whether /proc/self/exe is a file nobody can write: a
// sealed memfd (the daemon's embedded shim) or a file on a read-only
// mount (the command line's shim, executed through a detached read-only
// mount by cmd/cri-server).
func selfExeImmutable() bool {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	if got, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err == nil && got&allSeals == allSeals {
		return true
	}
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && st.Flags&unix.ST_RDONLY != 0
}

// cPlan is a fi_plan and the C memory it points to.
type cPlan struct {
	p      *C.struct_fi_plan
	allocs []unsafe.Pointer
}

func (c *cPlan) alloc(n int, size uintptr) unsafe.Pointer {
	p := C.calloc(C.size_t(max(n, 1)), C.size_t(size))
	if p == nil {
		panic("out of memory")
	}
	c.allocs = append(c.allocs, p)
	return p
}

func (c *cPlan) str(s string) *C.char {
	p := C.CString(s)
	c.allocs = append(c.allocs, unsafe.Pointer(p))
	return p
}

// strs is a C array of the strings, NULL-terminated.
func (c *cPlan) strs(ss []string) **C.char {
	a := unsafe.Slice((**C.char)(c.alloc(len(ss)+1, unsafe.Sizeof((*C.char)(nil)))), len(ss)+1)
	for i, s := range ss {
		a[i] = c.str(s)
	}
	return &a[0]
}

// free releases the plan; with CLONE_VM (fastinit.c) only once the child
// has exec'd or exited, which the caller knows by having reaped it.
func (c *cPlan) free() {
	if c == nil {
		return
	}
	if c.p != nil {
		C.criserver_fastinit_release(c.p)
	}
	for _, p := range c.allocs {
		C.free(p)
	}
	c.allocs = nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// fastFds are the parent's descriptors the child keeps.
type fastFds struct {
	stdio       [3]int
	sync, state int
	tasks       []int
	cgroup      int // -1: none
}

// buildFastPlan lays spec out for fastinit.c. Errors are those the Go init
// would report for the same spec.
func buildFastPlan(in *createInputs, spec *specs.Spec, cgPaths map[string]string, fds fastFds, cloneFlags uintptr, newCgroupNS bool) (_ *cPlan, retErr error) {
	c := &cPlan{}
	defer func() {
		if retErr != nil {
			c.free()
		}
	}()
	c.p = (*C.struct_fi_plan)(c.alloc(1, C.sizeof_struct_fi_plan))
	p, l, proc := c.p, spec.Linux, spec.Process
	for i, fd := range fds.stdio {
		p.stdio[i] = C.int(fd)
	}
	p.sync_fd, p.state_fd, p.cgroup_fd = C.int(fds.sync), C.int(fds.state), C.int(fds.cgroup)
	p.ntasks = C.int(len(fds.tasks))
	tasks := unsafe.Slice((*C.int)(c.alloc(len(fds.tasks), C.sizeof_int)), max(len(fds.tasks), 1))
	for i, fd := range fds.tasks {
		tasks[i] = C.int(fd)
	}
	p.tasks = &tasks[0]
	p.clone_flags = C.uint64_t(cloneFlags)
	p.new_cgroupns = cbool(newCgroupNS)
	if cloneFlags&unix.CLONE_NEWUTS != 0 {
		if spec.Hostname != "" {
			p.hostname = c.str(spec.Hostname)
		}
		if spec.Domainname != "" {
			p.domainname = c.str(spec.Domainname)
		}
	}
	p.rootfs = c.str(in.rootfs)
	p.root_prop = C.ulong(unix.MS_SLAVE | unix.MS_REC)
	if pr := l.RootfsPropagation; pr != "" {
		p.root_prop = C.ulong(propOpts[pr])
		p.final_prop = C.ulong(propOpts[pr])
	}
	p.root_readonly = cbool(spec.Root.Readonly)
	devBind, err := planMounts(c, spec, cgPaths, cloneFlags&unix.CLONE_NEWCGROUP != 0 || newCgroupNS)
	if err != nil {
		return nil, err
	}
	if !devBind {
		if err := planDevices(c, l.Devices); err != nil {
			return nil, err
		}
	}
	if err := planSysctl(c, l.Sysctl); err != nil {
		return nil, err
	}
	p.nmasked, p.masked = C.int(len(l.MaskedPaths)), (**C.char)(unsafe.Pointer(c.strs(l.MaskedPaths)))
	p.nreadonly, p.readonly = C.int(len(l.ReadonlyPaths)), (**C.char)(unsafe.Pointer(c.strs(l.ReadonlyPaths)))
	planProcess(c, proc, in)
	return c, nil
}

// planMounts lays out spec.Mounts; it says whether /dev is a bind mount
// (then no device is made).
func planMounts(c *cPlan, spec *specs.Spec, cgPaths map[string]string, cgroupNS bool) (devBind bool, err error) {
	c.p.nmounts = C.int(len(spec.Mounts))
	ms := unsafe.Slice((*C.struct_fi_mount)(c.alloc(len(spec.Mounts), C.sizeof_struct_fi_mount)), max(len(spec.Mounts), 1))
	for i, m := range spec.Mounts {
		dest := filepath.Clean(m.Destination)
		if dest == "/dev" && m.Type == "bind" {
			devBind = true
		}
		if err := checkProcSys(dest, m.Type); err != nil {
			return false, errdefs.InvalidArgument("mounts[%d] %s: %v", i, dest, err)
		}
		cm := &ms[i]
		cm.dest = c.str(dest)
		o := parseMountOpts(m.Options)
		typ := m.Type
		if typ == "" && o.flags&unix.MS_BIND != 0 {
			typ = "bind"
		}
		if len(o.propFlags) > len(cm.prop) {
			return false, errdefs.InvalidArgument("mounts[%d] %s: %d propagation options", i, dest, len(o.propFlags))
		}
		cm.nprop = C.int(len(o.propFlags))
		for j, pf := range o.propFlags {
			cm.prop[j] = C.ulong(pf)
		}
		if o.rec != nil {
			cm.has_attr, cm.attr_set, cm.attr_clr = 1, C.uint64_t(o.rec.Attr_set), C.uint64_t(o.rec.Attr_clr)
		}
		switch typ {
		case "bind":
			fi, err := os.Stat(m.Source)
			if err != nil {
				return false, errdefs.InvalidArgument("mounts[%d] %s: source %s: %v", i, dest, m.Source, err)
			}
			cm.kind, cm.src = C.FI_BIND, c.str(m.Source)
			cm.bind_dir, cm.bind_rec = cbool(fi.IsDir()), cbool(o.flags&unix.MS_REC != 0)
			cm.remount = C.ulong(o.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT))
		case "cgroup", "cgroup2":
			if cgroup2Root() { // with a cgroup namespace (fastRefusal)
				cm.kind, cm.src, cm.fstype, cm.flags = C.FI_FS, c.str("cgroup2"), c.str("cgroup2"), C.ulong(o.flags)
				continue
			}
			if err := planCgroupV1(c, cm, o, cgPaths, cgroupNS); err != nil {
				return false, errdefs.InvalidArgument("mounts[%d] %s: %v", i, dest, err)
			}
		default:
			cm.kind, cm.src, cm.fstype = C.FI_FS, c.str(m.Source), c.str(typ)
			cm.flags, cm.data = C.ulong(o.flags), c.str(joinData(o.data))
			cm.is_proc, cm.no_symlink = cbool(typ == "proc"), cbool(typ == "proc" || typ == "sysfs")
		}
	}
	c.p.mounts = &ms[0]
	return devBind, nil
}

// planCgroupV1 is mountCgroups (cgroup_mount.go) for a v1 host: a tmpfs
// with each hierarchy under it, mounted in a cgroup namespace or bound
// from the container's cgroups.
func planCgroupV1(c *cPlan, cm *C.struct_fi_mount, o mountOpts, paths map[string]string, cgroupNS bool) error {
	hiers, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	batch := !cgroupNS && o.flags&^(unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RELATIME) == 0
	cm.kind, cm.cg_batch, cm.cg_ro = C.FI_CGROUP, cbool(batch), cbool(o.flags&unix.MS_RDONLY != 0)
	attr := uint64(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC)
	if o.flags&unix.MS_RDONLY != 0 {
		attr |= unix.MOUNT_ATTR_RDONLY
	}
	cm.cg_attr = C.uint64_t(attr)
	subs := unsafe.Slice((*C.struct_fi_sub)(c.alloc(len(hiers), C.sizeof_struct_fi_sub)), max(len(hiers), 1))
	for i, h := range hiers {
		s := &subs[i]
		s.name = c.str(h.Name)
		if cgroupNS {
			s.fstype, s.flags, s.data = c.str(h.FSType), C.ulong(o.flags), c.str(h.Opts)
			continue
		}
		s.bind = 1
		if src := hierPath(h, paths); src != "" {
			s.src = c.str(src)
		}
		if !batch {
			s.remount = C.ulong(unix.MS_BIND | unix.MS_REMOUNT | o.flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
		}
	}
	cm.nsub, cm.subs = C.int(len(hiers)), &subs[0]
	return nil
}

func planDevices(c *cPlan, devs []specs.LinuxDevice) error {
	all := append(append([]specs.LinuxDevice{}, defaultDevices...), devs...)
	c.p.make_devices, c.p.ndevs = 1, C.int(len(all))
	out := unsafe.Slice((*C.struct_fi_dev)(c.alloc(len(all), C.sizeof_struct_fi_dev)), len(all))
	for i, d := range all {
		p := filepath.Clean("/" + d.Path)
		if !strings.HasPrefix(p, "/dev/") {
			return errdefs.InvalidArgument("linux.devices %s: device path %s is outside /dev", d.Path, d.Path)
		}
		mode, ok := deviceFileType(d.Type)
		if !ok {
			return errdefs.InvalidArgument("linux.devices %s: device type %q", d.Path, d.Type)
		}
		perm := uint32(0o666)
		if d.FileMode != nil {
			perm = uint32(d.FileMode.Perm())
		}
		o := &out[i]
		o.path, o.mode, o.perm = c.str(p), C.uint(mode|perm), C.uint(perm)
		o.rdev = C.ulonglong(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
		if d.UID != nil {
			o.uid = C.uint(*d.UID)
		}
		if d.GID != nil {
			o.gid = C.uint(*d.GID)
		}
	}
	c.p.devs = &out[0]
	_, err := os.Stat("/proc/kcore")
	c.p.kcore_link = cbool(err == nil)
	return nil
}

func planSysctl(c *cPlan, sysctl map[string]string) error {
	var paths, keys, vals []string
	for k, v := range sysctl {
		if strings.Contains(k, "..") || strings.Contains(k, "/") {
			return errdefs.InvalidArgument("linux.sysctl %q: bad key", k)
		}
		paths, keys, vals = append(paths, "/proc/sys/"+strings.ReplaceAll(k, ".", "/")), append(keys, k), append(vals, v)
	}
	c.p.nsysctl = C.int(len(keys))
	c.p.sysctl_paths = (**C.char)(unsafe.Pointer(c.strs(paths)))
	c.p.sysctl_keys = (**C.char)(unsafe.Pointer(c.strs(keys)))
	c.p.sysctl_vals = (**C.char)(unsafe.Pointer(c.strs(vals)))
	return nil
}

// planProcess lays out what prepareProcess, lookExec and finalize use.
func planProcess(c *cPlan, proc *specs.Process, in *createInputs) {
	p := c.p
	if proc.Terminal {
		p.terminal = 1
		if sz := proc.ConsoleSize; sz != nil {
			p.console_rows, p.console_cols = C.ushort(sz.Height), C.ushort(sz.Width)
		}
	}
	p.nrlimits = C.int(len(proc.Rlimits))
	rls := unsafe.Slice((*C.struct_fi_rlimit)(c.alloc(len(proc.Rlimits), C.sizeof_struct_fi_rlimit)), max(len(proc.Rlimits), 1))
	for i, rl := range proc.Rlimits {
		rls[i].resource, rls[i].name = C.int(rlimitByName[rl.Type]), c.str(rl.Type)
		rls[i].cur, rls[i].max = C.uint64_t(rl.Soft), C.uint64_t(rl.Hard)
	}
	p.rlimits = &rls[0]
	p.umask = 0o022
	if proc.User.Umask != nil {
		p.umask = C.uint(*proc.User.Umask)
	}
	cwd := proc.Cwd
	if cwd == "" {
		cwd = "/"
	}
	p.cwd = c.str(cwd)
	name := proc.Args[0]
	var cands []string
	if strings.Contains(name, "/") {
		cands, p.arg0_has_slash = []string{name}, 1
	} else {
		pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		for _, e := range proc.Env {
			if v, ok := strings.CutPrefix(e, "PATH="); ok {
				pathEnv = v
			}
		}
		for _, d := range filepath.SplitList(pathEnv) {
			cands = append(cands, filepath.Join(d, name))
		}
	}
	p.ncands, p.cands = C.int(len(cands)), (**C.char)(unsafe.Pointer(c.strs(cands)))
	p.arg0 = c.str(name)
	p.argv = c.strs(proc.Args)
	env := proc.Env
	if !hasEnv(env, "HOME") {
		env = append(env[:len(env):len(env)], "HOME=/")
	}
	p.envp = c.strs(env)

	caps := proc.Capabilities
	if caps == nil {
		caps = &specs.LinuxCapabilities{}
	}
	last := lastCapCached()
	perm, inh := capMask(caps.Permitted, last), capMask(caps.Inheritable, last)
	p.cap_bounding, p.cap_eff = C.uint64_t(capMask(caps.Bounding, last)), C.uint64_t(capMask(caps.Effective, last))
	p.cap_perm, p.cap_inh = C.uint64_t(perm), C.uint64_t(inh)
	p.cap_amb = C.uint64_t(capMask(caps.Ambient, last) & perm & inh)
	p.last_cap = C.int(last)
	p.uid, p.gid = C.uint(proc.User.UID), C.uint(proc.User.GID)
	gids := unsafe.Slice((*C.uint)(c.alloc(len(proc.User.AdditionalGids), C.sizeof_uint)), max(len(proc.User.AdditionalGids), 1))
	for i, g := range proc.User.AdditionalGids {
		gids[i] = C.uint(g)
	}
	p.ngroups, p.groups = C.int(len(proc.User.AdditionalGids)), &gids[0]
	p.no_new_privs = cbool(proc.NoNewPrivileges)
	if len(in.bpf) > 0 {
		b := C.CBytes(in.bpf)
		c.allocs = append(c.allocs, b)
		p.bpf, p.bpf_len, p.bpf_flags = b, C.uint(len(in.bpf)/8), C.uint(in.bpfFlags)
	}
}

// forkFastInit clones the init from the calling thread (startIn puts it
// in the namespaces joined by path first).
func forkFastInit(c *cPlan) (int, error) {
	pid := C.criserver_fastinit_start(c.p)
	if pid < 0 {
		return 0, unix.Errno(-pid)
	}
	return int(pid), nil
}
