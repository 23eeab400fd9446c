package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodsPingAcrossBridge(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	a := podConfig("pod-a")
	a.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"crit.svc"}, Options: []string{"ndots:5"}}
	a.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1234"}
	idA, idB := e.run(a), e.run(podConfig("pod-b"))
	stA, infoA := e.status(idA)
	stB, _ := e.status(idB)
	for _, st := range []*runtime.PodSandboxStatus{stA, stB} {
		if st.State != runtime.PodSandboxState_SANDBOX_READY || !strings.HasPrefix(st.Network.Ip, e.subnet+".") {
			t.Fatalf("pod %s: state %v ip %q, want ready in %s.0/24", st.Metadata.Name, st.State, st.Network.Ip, e.subnet)
		}
	}
	netns, _ := infoA["netns"].(string)
	if netns == "" || infoA["cniResult"] == nil {
		t.Fatalf("verbose info lacks netns or cniResult: %v", infoA)
	}
	if out, err := nsenter(t, []string{"--net=" + netns}, "busybox", "ping", "-c1", "-W3", stB.Network.Ip); err != nil {
		t.Fatalf("ping pod-b from pod-a: %v: %s", err, out)
	}
	checks := []struct{ name, got, want string }{
		{"hostname in uts ns", must(nsenter(t, []string{"--uts=" + infoA["utsns"].(string)}, "busybox", "hostname")), "pod-a"},
		{"net sysctl in netns", must(nsenter(t, []string{"--net=" + netns}, "busybox", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")), "80"},
		{"ipc sysctl in ipc ns", must(nsenter(t, []string{"--ipc=" + infoA["ipcns"].(string)}, "busybox", "cat", "/proc/sys/kernel/shmmni")), "1234"},
		{"lo up", must(nsenter(t, []string{"--net=" + netns}, "busybox", "cat", "/sys/class/net/lo/operstate")), "unknown"},
	}
	dir := filepath.Join(e.cfg.State, "pods", idA)
	hosts, _ := os.ReadFile(filepath.Join(dir, "hosts"))
	resolv, _ := os.ReadFile(filepath.Join(dir, "resolv.conf"))
	hostname, _ := os.ReadFile(filepath.Join(dir, "hostname"))
	checks = append(checks,
		struct{ name, got, want string }{"hosts names the pod ip", fmt.Sprint(strings.Contains(string(hosts), stA.Network.Ip+"\tpod-a")), "true"},
		struct{ name, got, want string }{"resolv.conf", string(resolv), "nameserver 10.96.0.10\nsearch crit.svc\noptions ndots:5\n"},
		struct{ name, got, want string }{"hostname file", string(hostname), "pod-a\n"},
		struct{ name, got, want string }{"shm is tmpfs", fsType(filepath.Join(dir, "shm")), "tmpfs"},
	)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if _, err := e.rt.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: idA}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range e.heldIPs() {
		if ip == stA.Network.Ip {
			t.Errorf("stop did not release %s in host-local", ip)
		}
	}
	if st, _ := e.status(idA); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.Network.Ip != "" {
		t.Errorf("after stop: state %v ip %q", st.State, st.Network.Ip)
	}
	e.stopRemove(idA)
	e.stopRemove(idB)
}

func must(s string, err error) string {
	if err != nil {
		return "error: " + err.Error() + ": " + s
	}
	return s
}

func fsType(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err.Error()
	}
	if st.Type == unix.TMPFS_MAGIC {
		return "tmpfs"
	}
	return fmt.Sprintf("%#x", st.Type)
}

// listenInNetns opens a TCP listener inside the pod's netns: the socket
// keeps its namespace after the thread that made it is gone.
func listenInNetns(t *testing.T, netns string) net.Listener {
	t.Helper()
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, err}
			return
		}
		l, err := net.Listen("tcp4", "0.0.0.0:8080")
		ch <- res{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in pod netns: %v", r.err)
	}
	return r.l
}

func freePort(t *testing.T) int32 {
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func TestHostPortReachesPod(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	cfg := podConfig("web")
	hostPort := freePort(t)
	cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: hostPort}}
	id := e.run(cfg)
	_, info := e.status(id)
	l := listenInNetns(t, info["netns"].(string))
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the pod\n"))
			c.Close()
		}
	}()
	// The gateway is the host's own address on the bridge: traffic to it
	// goes through portmap's OUTPUT DNAT like any local client's.
	addr := net.JoinHostPort(e.subnet+".1", fmt.Sprint(hostPort))
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("dial hostPort %s: %v", addr, err)
	}
	buf := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _ := c.Read(buf)
	c.Close()
	if got := string(buf[:n]); got != "hello from the pod\n" {
		t.Fatalf("through hostPort got %q", got)
	}
	e.stopRemove(id)
}

func TestHostNetworkPod(t *testing.T) {
	e := newPodEnv(t)
	// No conflist at all: a host-network pod must not need CNI.
	e.start()
	cfg := podConfig("hostnet")
	cfg.Hostname = ""
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
		Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE}}
	id := e.run(cfg)
	st, info := e.status(id)
	host, _ := os.Hostname()
	if st.Network.Ip != "" || info["netns"] != "" || info["utsns"] != "" || info["hostname"] != host {
		t.Fatalf("host-network pod: ip %q netns %v utsns %v hostname %v", st.Network.Ip, info["netns"], info["utsns"], info["hostname"])
	}
	if st.Linux.Namespaces.Options.Network != runtime.NamespaceMode_NODE {
		t.Errorf("namespace options not reported: %v", st.Linux.Namespaces.Options)
	}
	// Its containers join the node's netns: the node's interfaces are theirs.
	ifs, _ := net.Interfaces()
	if len(ifs) < 2 {
		t.Errorf("host has only %d interfaces", len(ifs))
	}
	e.stopRemove(id)
}

func TestFailedAddLeavesNothing(t *testing.T) {
	e := newPodEnv(t)
	e.failingAddConflist()
	e.start()
	parent := "/crit-" + randHex(4)
	cfg := podConfig("doomed")
	cfg.Linux.CgroupParent = parent + "/pod1"
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	_, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg})
	if err == nil || !strings.Contains(err.Error(), "crit-fail refuses ADD") {
		t.Fatalf("RunPodSandbox with a failing plugin: %v", err)
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, parent)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s%s left: %v", c, parent, err)
		}
	}
	if l, _ := e.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{}); len(l.GetItems()) != 0 {
		t.Errorf("failed pod listed: %v", l.Items)
	}
	// The name is free again: the kubelet's retry must not hit "reserved".
	os.Remove(filepath.Join(e.cfg.CNI.ConfDir, "10-crit.conflist"))
	e.conflist()
	id := e.run(cfg)
	e.stopRemove(id)
	// checkLeaks (cleanup) asserts no mount, veth, IP, pod dir, rule.
}

func TestRestartThenStopReleasesIP(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	id := e.run(podConfig("survivor"))
	st, _ := e.status(id)
	e.stop()
	e.start()
	st2, _ := e.status(id)
	if st2.State != runtime.PodSandboxState_SANDBOX_READY || st2.Network.Ip != st.Network.Ip {
		t.Fatalf("after restart: state %v ip %q, want ready %q", st2.State, st2.Network.Ip, st.Network.Ip)
	}
	if _, err := e.rt.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if ips := e.heldIPs(); len(ips) != 0 {
		t.Fatalf("after restart and stop, host-local still holds %v", ips)
	}
	e.stopRemove(id)
}

func TestStopRemoveWithoutCNIConfig(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	id := e.run(podConfig("orphan"))
	// The admin removes the network config: the pod must still go away and
	// release its IP, with the conflist ADD used.
	os.Remove(filepath.Join(e.cfg.CNI.ConfDir, "10-crit.conflist"))
	for i := 0; i < 2; i++ { // and both are idempotent
		e.stopRemove(id)
	}
	if _, err := e.rt.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("status of removed pod: %v", err)
	}
}

func TestNoHostnameMeansTheNodes(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	// critest's pod names run past the 64-byte hostname limit.
	cfg := podConfig("create-PodSandbox-for-container-" + randHex(20))
	cfg.Hostname = ""
	id := e.run(cfg)
	_, info := e.status(id)
	node, _ := os.Hostname()
	if got := must(nsenter(t, []string{"--uts=" + info["utsns"].(string)}, "busybox", "hostname")); got != node {
		t.Errorf("pod hostname %q, want the node's %q", got, node)
	}
	e.stopRemove(id)
}

func TestConfDirChangePickedUp(t *testing.T) {
	e := newPodEnv(t)
	e.start()
	_, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("early")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("RunPodSandbox with no network config: %v, want Unavailable", err)
	}
	e.conflist()
	id := e.run(podConfig("early"))
	e.stopRemove(id)
}

func TestRunPodSandboxRefusesBadInput(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	tests := []struct {
		name    string
		mutate  func(*runtime.RunPodSandboxRequest)
		wantMsg string
	}{
		{"unknown handler", func(r *runtime.RunPodSandboxRequest) { r.RuntimeHandler = "kata" }, "runtime handler"},
		{"node-level sysctl", func(r *runtime.RunPodSandboxRequest) { r.Config.Linux.Sysctls = map[string]string{"kernel.panic": "1"} }, "not namespaced"},
		{"sysctl path escape", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"net/../../kernel/panic": "1"}
		}, "malformed"},
		{"net sysctl on host network", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
			r.Config.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}
		}, "host network"},
		{"hostname too long", func(r *runtime.RunPodSandboxRequest) { r.Config.Hostname = strings.Repeat("h", 65) }, "longer than 64"},
		{"no metadata", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata = nil }, "metadata"},
		{"cgroup parent escape", func(r *runtime.RunPodSandboxRequest) { r.Config.Linux.CgroupParent = "/../../x" }, "cgroup parent"},
		{"pid TARGET", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}}
		}, "TARGET"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &runtime.RunPodSandboxRequest{Config: podConfig("bad")}
			tc.mutate(r)
			_, err := e.rt.RunPodSandbox(context.Background(), r)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("got %v, want InvalidArgument mentioning %q", err, tc.wantMsg)
			}
		})
	}
}
