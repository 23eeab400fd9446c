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
	thread     []nsJoin // net, uts, ipc, pid, cgroup, time: setns on a locked thread
	nsenter    []nsJoin // user, mnt: only single-threaded, so before the Go runtime
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
		j := nsJoin{ns.Type, ns.Path}
		if ns.Type == specs.UserNamespace || ns.Type == specs.MountNamespace {
			p.nsenter = append(p.nsenter, j)
		} else {
			p.thread = append(p.thread, j)
		}
	}
	for _, j := range p.nsenter {
		// The new namespaces come from clone in the parent, owned by the
		// host's user namespace; owning them by a joined one needs unshare in
		// the constructor, which is not written yet.
		if j.typ == specs.UserNamespace && p.cloneFlags&^unix.CLONE_NEWNS != 0 {
			return nil, errdefs.Unimplemented("linux.namespaces: joining a user namespace while creating other namespaces")
		}
	}
	if p.cloneFlags&unix.CLONE_NEWUSER == 0 && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) && !hasJoin(p.nsenter, specs.UserNamespace) {
		return nil, errdefs.InvalidArgument("linux.uidMappings: given without a user namespace")
	}
	return p, nil
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
// "user:/proc/1/ns/user,mnt:/proc/1/ns/mnt", joined in that order.
const nsenterEnv = "_CRISERVER_NSENTER"

func nsenterValue(js []nsJoin) string {
	var parts []string
	for _, t := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.MountNamespace} {
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
