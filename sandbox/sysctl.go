package sandbox

import (
	"fmt"
	"os"
	goruntime "runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// sysctl is one validated namespaced sysctl.
type sysctl struct {
	key   string // as the user wrote it
	path  string // relative to /proc/sys
	value string
}

func (s sysctl) apply() error {
	if err := os.WriteFile("/proc/sys/"+s.path, []byte(s.value), 0); err != nil {
		return errdefs.InvalidArgument("set sysctl %s=%s: %v", s.key, s.value, err)
	}
	return nil
}

// forDevice says whether s configures one network device by name
// (net.ipv4.conf.eth0.*, net.ipv6.neigh.eth0.*): the pod's devices other
// than lo appear only with CNI ADD, so such a sysctl is set after it.
func (s sysctl) forDevice() bool {
	parts := strings.Split(s.path, "/")
	if len(parts) < 5 || parts[0] != "net" || (parts[2] != "conf" && parts[2] != "neigh") {
		return false
	}
	switch parts[3] {
	case "all", "default", "lo":
		return false
	}
	return true
}

// splitSysctls separates the sysctls settable when the namespaces are
// made from those that wait for the network's devices.
func splitSysctls(all []sysctl) (early, late []sysctl) {
	for _, s := range all {
		if s.forDevice() {
			late = append(late, s)
		} else {
			early = append(early, s)
		}
	}
	return early, late
}

// applyInNetns sets sysctls from a thread in the netns at path: /proc/sys/net
// resolves against the writing thread's network namespace. The thread is
// never unlocked, so the Go runtime destroys it instead of reusing it.
func applyInNetns(path string, sysctls []sysctl) error {
	if len(sysctls) == 0 {
		return nil
	}
	ch := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		ch <- applyInNetnsLocked(path, sysctls)
	}()
	return <-ch
}

// Preconditions: the calling goroutine is locked to its thread and the
// thread will die afterwards.
func applyInNetnsLocked(path string, sysctls []sysctl) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pod netns: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter pod netns: %w", err)
	}
	for _, s := range sysctls {
		if err := s.apply(); err != nil {
			return err
		}
	}
	return nil
}

// Which namespace holds a sysctl. Anything else is node-level: setting it
// for a pod would change the whole node, so it is refused.
const (
	nsNet = "network"
	nsIPC = "ipc"
	nsUTS = "uts"
)

func sysctlNamespace(key string) string {
	switch {
	case strings.HasPrefix(key, "net."):
		return nsNet
	case key == "kernel.shmmax", key == "kernel.shmall", key == "kernel.shmmni",
		key == "kernel.shm_rmid_forced", key == "kernel.msgmax", key == "kernel.msgmnb",
		key == "kernel.msgmni", key == "kernel.sem", strings.HasPrefix(key, "fs.mqueue."):
		return nsIPC
	case key == "kernel.hostname", key == "kernel.domainname":
		return nsUTS
	}
	return ""
}

// parseSysctls validates the pod's sysctls against the namespaces it
// owns; hostNet/hostIPC pods may not set sysctls of the node's namespaces.
func parseSysctls(in map[string]string, ownNet, ownIPC bool) ([]sysctl, error) {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []sysctl
	for _, k := range keys {
		norm := k
		if strings.Contains(k, "/") {
			norm = strings.ReplaceAll(strings.Trim(k, "/"), "/", ".")
		}
		for _, part := range strings.Split(norm, ".") {
			if part == "" || part == ".." {
				return nil, errdefs.InvalidArgument("sysctl %q: malformed key", k)
			}
		}
		if strings.ContainsAny(in[k], "\n\x00") {
			return nil, errdefs.InvalidArgument("sysctl %q: malformed value", k)
		}
		switch sysctlNamespace(norm) {
		case nsNet:
			if !ownNet {
				return nil, errdefs.InvalidArgument("sysctl %q: the pod uses the host network namespace", k)
			}
		case nsIPC:
			if !ownIPC {
				return nil, errdefs.InvalidArgument("sysctl %q: the pod uses the host IPC namespace", k)
			}
		case nsUTS:
			if !ownNet {
				return nil, errdefs.InvalidArgument("sysctl %q: the pod uses the host UTS namespace", k)
			}
		default:
			return nil, errdefs.InvalidArgument("sysctl %q is not namespaced: it would change the node", k)
		}
		path := norm
		if !strings.Contains(k, "/") {
			path = strings.ReplaceAll(norm, ".", "/")
		} else {
			path = strings.Trim(k, "/")
		}
		out = append(out, sysctl{key: k, path: path, value: in[k]})
	}
	return out, nil
}
