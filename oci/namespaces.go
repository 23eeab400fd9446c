package oci

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// procNsName is the /proc/<pid>/ns/ entry of a namespace type.
var procNsName = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace: "pid", specs.NetworkNamespace: "net", specs.MountNamespace: "mnt",
	specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.UserNamespace: "user",
	specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time",
}

// nsPlan splits a spec's namespaces into those made by clone, those joined
// per thread in the parent and those joined by oci/nsenter in the child.
type nsPlan struct {
	cloneFlags uintptr
	thread     []nsJoin // net, uts, ipc, pid: setns on a locked thread
	// user, mnt, time: only single-threaded, so before the Go runtime; cgroup
	// too, so that the parent joining the cgroup at fork (CLONE_INTO_CGROUP)
	// is not itself in the container's cgroup namespace, which an
	// nsdelegate cgroup2 mount would refuse.
	nsenter []nsJoin
	// unshare: new namespaces the constructor makes after joining a user
	// namespace by path, so that it owns them (see oci/nsenter/userns.c).
	unshare uintptr
	// timeOffsets: linux.timeOffsets as /proc/<pid>/timens_offsets lines,
	// written by the constructor between its unshare and its fork.
	timeOffsets string
}

// timensOffsetsEnv carries nsPlan.timeOffsets to the constructor.
const timensOffsetsEnv = "_CRISERVER_TIMENS_OFFSETS"

// planTimeOffsets moves a new time namespace with offsets from clone to the
// constructor's unshare: the kernel freezes a time namespace's offsets once
// a process is in it, and clone puts the init in at once. A new PID
// namespace moves along, since the constructor then forks the init into
// both (the pid 1 clone would make may not fork with CLONE_PARENT).
func (p *nsPlan) planTimeOffsets(offs map[string]specs.LinuxTimeOffset) error {
	if len(offs) == 0 {
		return nil
	}
	if p.cloneFlags&unix.CLONE_NEWTIME == 0 && p.unshare&unix.CLONE_NEWTIME == 0 {
		return errdefs.InvalidArgument("linux.timeOffsets: given without a new time namespace")
	}
	var lines []string
	for _, clock := range []string{"monotonic", "boottime"} {
		if o, ok := offs[clock]; ok {
			lines = append(lines, fmt.Sprintf("%s %d %d", clock, o.Secs, o.Nanosecs))
		}
	}
	if len(lines) != len(offs) {
		return errdefs.InvalidArgument("linux.timeOffsets: only monotonic and boottime have offsets")
	}
	p.timeOffsets = strings.Join(lines, "\n")
	moved := p.cloneFlags & (unix.CLONE_NEWTIME | unix.CLONE_NEWPID)
	p.cloneFlags &^= moved
	p.unshare |= moved
	return nil
}

type nsJoin struct {
	typ  specs.LinuxNamespaceType
	path string
}

func planNamespaces(l *specs.Linux) (*nsPlan, error) {
	p := &nsPlan{}
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range l.Namespaces {
		fl, ok := nsFlags[ns.Type]
		if !ok {
			return nil, errdefs.InvalidArgument("linux.namespaces[%d].type: unknown %q", i, ns.Type)
		}
		if seen[ns.Type] {
			return nil, errdefs.InvalidArgument("linux.namespaces[%d]: %s given twice", i, ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path == "" {
			p.cloneFlags |= fl
			continue
		}
		p.add(nsJoin{ns.Type, ns.Path})
	}
	if hasJoin(p.nsenter, specs.UserNamespace) {
		p.unshareAfterUserJoin()
	}
	if err := p.planTimeOffsets(l.TimeOffsets); err != nil {
		return nil, err
	}
	if p.cloneFlags&unix.CLONE_NEWUSER == 0 && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) && !hasJoin(p.nsenter, specs.UserNamespace) {
		return nil, errdefs.InvalidArgument("linux.uidMappings: given without a user namespace")
	}
	return p, nil
}

// add files a join by path under the side that can do it.
func (p *nsPlan) add(j nsJoin) {
	switch j.typ {
	case specs.UserNamespace, specs.MountNamespace, specs.CgroupNamespace, specs.TimeNamespace:
		p.nsenter = append(p.nsenter, j)
	default:
		p.thread = append(p.thread, j)
	}
}

func hasJoin(js []nsJoin, t specs.LinuxNamespaceType) bool {
	for _, j := range js {
		if j.typ == t {
			return true
		}
	}
	return false
}

// nsenterEnv is the environment variable read by the oci/nsenter constructor:
// "user:/proc/1/ns/user,cgroup:/proc/1/ns/cgroup,time:/proc/1/ns/time,mnt:/proc/1/ns/mnt", joined
// in that order (the mount namespace last: the paths are under /proc).
const nsenterEnv = "_CRISERVER_NSENTER"

// newCgroupNSEnv asks the constructor for a new cgroup namespace once the
// init is in its cgroup, so that the namespace is rooted there.
const newCgroupNSEnv = "_CRISERVER_NEWCGROUPNS"

func nsenterValue(js []nsJoin) string {
	var parts []string
	for _, t := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.CgroupNamespace, specs.TimeNamespace, specs.MountNamespace} {
		for _, j := range js {
			if j.typ == t {
				parts = append(parts, procNsName[t]+":"+j.path)
			}
		}
	}
	return strings.Join(parts, ",")
}

// startIn starts cmd with the calling thread in the namespaces of joins. The
// setns happens on a locked thread of a fresh goroutine that never unlocks,
// so the runtime throws the thread away instead of reusing it in the
// container's namespaces.
func startIn(joins []nsJoin, start func() error) error {
	if len(joins) == 0 {
		return start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread dies with the goroutine.
		for _, j := range joins {
			f, err := os.Open(j.path)
			if err != nil {
				errc <- errdefs.InvalidArgument("linux.namespaces %s path: %v", j.typ, err)
				return
			}
			err = unix.Setns(int(f.Fd()), int(nsFlags[j.typ]))
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("join %s namespace %s: %w", j.typ, j.path, err)
				return
			}
		}
		errc <- start()
	}()
	return <-errc
}

func idMaps(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// hostID maps a container id to the host through mappings (identity if none).
func hostID(ms []specs.LinuxIDMapping, id uint32) (int, bool) {
	if len(ms) == 0 {
		return int(id), true
	}
	for _, m := range ms {
		if id >= m.ContainerID && id-m.ContainerID < m.Size {
			return int(m.HostID + id - m.ContainerID), true
		}
	}
	return -1, false
}
