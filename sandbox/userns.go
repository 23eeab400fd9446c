package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A pod with hostUsers: false has a user namespace of its own, with the
// kubelet's mappings, and its network, IPC and UTS namespaces (and PID, when
// shared) belong to it, as with containerd (whose sandbox's runc makes them
// all together) and CRI-O (pinns): only then can a container's root, which
// joins the pod's user namespace, mount sysfs and mqueue and administer the
// pod's network. A Go thread cannot unshare a user namespace, so a process
// is cloned into all of them at once: the pod init ("pod-init", which the C
// constructor runs without a Go runtime). It stays as the PID namespace's
// reaper when the pod shares one; otherwise it is killed once every
// namespace is pinned.

// userNSPlan is the pod's mappings (one range each, validated by oci/spec).
type userNSPlan struct {
	uids, gids []syscall.SysProcIDMap
	root       int // host uid of the pod's root, for the files the pod's root must own
	rootGID    int
}

// planUserNS reads the pod's user namespace from its config, nil for the
// host's.
func planUserNS(cfg *runtime.PodSandboxConfig) *userNSPlan {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u == nil || u.GetMode() != runtime.NamespaceMode_POD || len(u.GetUids()) == 0 || len(u.GetGids()) == 0 {
		return nil
	}
	conv := func(ms []*runtime.IDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(ms))
		for i, m := range ms {
			out[i] = syscall.SysProcIDMap{ContainerID: int(m.GetContainerId()), HostID: int(m.GetHostId()), Size: int(m.GetLength())}
		}
		return out
	}
	return &userNSPlan{uids: conv(u.GetUids()), gids: conv(u.GetGids()),
		root: int(u.GetUids()[0].GetHostId()), rootGID: int(u.GetGids()[0].GetHostId())}
}

// createUserNamespaces is createNamespaces for a pod with its own user
// namespace (req.net, ipc and uts are all true: oci/spec refuses host
// namespaces with one). On error everything pinned is undone.
func createUserNamespaces(req nsRequest, u *userNSPlan) (res nsResult, userns string, err error) {
	pid, err := startUserNSInit(req.dir, u)
	if err != nil {
		return res, "", err
	}
	defer func() {
		if err != nil {
			unpinAll(res)
			_ = unpin(userns)
			killInit(pid)
		}
	}()
	src := fmt.Sprintf("/proc/%d/ns/", pid)
	if userns, err = pin(src+"user", filepath.Join(req.dir, "userns")); err != nil {
		return res, "", err
	}
	for _, n := range []struct {
		want bool
		name string
		dst  *string
	}{{req.net, "net", &res.net}, {req.ipc, "ipc", &res.ipc}, {req.uts, "uts", &res.uts}, {req.pid, "pid", &res.pid}} {
		if !n.want {
			continue
		}
		if *n.dst, err = pin(src+n.name, filepath.Join(req.dir, n.name+"ns")); err != nil {
			return res, "", err
		}
	}
	if err := inPodNamespaces(res, func() error { return setupInside(req) }); err != nil {
		return res, "", err
	}
	if req.pid {
		res.initPID = pid
		if err := os.WriteFile(filepath.Join(req.dir, "init.pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
			return res, "", fmt.Errorf("record pod init: %w", err)
		}
	} else {
		killInit(pid) // every namespace is pinned; the Wait goroutine reaps it
	}
	return res, userns, nil
}

// startUserNSInit clones the pod init into a new user namespace with the
// pod's mappings and new network, IPC, UTS and PID namespaces. Go writes
// the maps before the child execs.
func startUserNSInit(dir string, u *userNSPlan) (int, error) {
	cmd := exec.Command("/proc/self/exe", initArg)
	cmd.Env = append(os.Environ(), podDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWPID,
		UidMappings: u.uids, GidMappings: u.gids, GidMappingsEnableSetgroups: true, Setsid: true,
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start pod user namespace: %w", err)
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

// inPodNamespaces runs fn on a throwaway locked thread joined to the pod's
// network, IPC and UTS namespaces (the daemon, root of the host's user
// namespace, may administer those of a user namespace below it).
func inPodNamespaces(res nsResult, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// No unlock: the thread dies with the goroutine.
		for _, n := range []struct {
			path string
			fl   int
		}{{res.net, unix.CLONE_NEWNET}, {res.ipc, unix.CLONE_NEWIPC}, {res.uts, unix.CLONE_NEWUTS}} {
			if n.path == "" {
				continue
			}
			f, err := os.Open(n.path)
			if err != nil {
				errc <- fmt.Errorf("open pod namespace: %w", err)
				return
			}
			err = unix.Setns(int(f.Fd()), n.fl)
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("join pod namespace %s: %w", filepath.Base(n.path), err)
				return
			}
		}
		errc <- fn()
	}()
	return <-errc
}

// setupInside does in the pod's namespaces what createNamespacesLocked
// does after its unshare: hostname, lo, sysctls.
func setupInside(req nsRequest) error {
	if req.uts {
		if err := unix.Sethostname([]byte(req.hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if req.net {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	for _, s := range req.sysctls {
		if err := s.apply(); err != nil {
			return err
		}
	}
	return nil
}

// ownPodFiles gives the pod's root the files the runtime made for it
// (hostname, hosts, resolv.conf, /dev/shm): owned by the host's root, they
// would be nobody's inside, read-only to the pod's root.
func ownPodFiles(p *Pod, u *userNSPlan) error {
	if u == nil {
		return nil
	}
	for _, f := range []string{p.HostnamePath, p.HostsPath, p.ResolvPath, p.ShmPath} {
		if f == "" || f == "/dev/shm" {
			continue
		}
		if err := os.Chown(f, u.root, u.rootGID); err != nil {
			return fmt.Errorf("give pod file %s to the pod's root: %w", filepath.Base(f), err)
		}
	}
	return nil
}
