package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The tests in this file's siblings drive a private cri-server over CRI
// gRPC, as the kubelet does, where critest cannot reach: a daemon killed
// and restarted mid-run, logs rotated under load.

// busybox is the test image every scenario runs (hack/test-images.sh builds
// it from Debian's busybox: sh, awk, seq, dd, usleep).
const busybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// cri is a CRI client of one private daemon and its clean-up bookkeeping.
type cri struct {
	s    *server
	rt   runtime.RuntimeServiceClient
	img  runtime.ImageServiceClient
	conn *grpc.ClientConn
	// cgroup parents the test named, so the leak check attributes them.
	ids map[string]bool
}

func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(gateEnv) != "1" {
		t.Skipf("set %s=1 to run (needs root, hack/registry.sh and the test images)", gateEnv)
	}
	if os.Getuid() != 0 {
		t.Fatal("the e2e test runs as root")
	}
}

// privateServer starts a daemon of its own for t. At the end every pod
// still there is stopped and removed through CRI, the daemon stopped, its
// log kept under _output/e2e, and what the run left on the machine is a
// test failure.
func privateServer(t *testing.T) *cri {
	t.Helper()
	before := snapshot(t)
	s := newServer(t)
	c := &cri{s: s, ids: map[string]bool{}}
	t.Cleanup(func() {
		if c.conn != nil {
			c.removeAllPods(t)
			c.conn.Close()
		}
		s.stop(t)
		root := repoRoot(t)
		dst := filepath.Join(root, "_output", "e2e", t.Name()+"-server.log")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			_ = copyFile(s.log, dst)
		}
		o := owner{dirs: []string{s.dir}, bridge: s.bridge, net: s.net, ids: idsFromLog(s.log)}
		for id := range c.ids {
			o.ids[id] = true
		}
		left := leftovers(t, before, o, s.bin)
		deleteBridge(t, s.bridge)
		for _, l := range left {
			t.Errorf("left behind: %s", l)
		}
		if err := os.RemoveAll(s.dir); err != nil {
			t.Errorf("remove %s: %v", s.dir, err)
		}
	})
	s.start(t)
	c.connect(t)
	return c
}

func (c *cri) connect(t *testing.T) {
	t.Helper()
	if c.conn != nil {
		c.conn.Close()
	}
	conn, err := grpc.NewClient("unix://"+c.s.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("connect to %s: %v", c.s.sock, err)
	}
	c.conn, c.rt, c.img = conn, runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
}

// kill9 kills the daemon process alone with SIGKILL and waits for it to go.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	p := s.cmd.Process
	s.cmd = nil
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 cri-server: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("cri-server (pid %d) alive 10s after SIGKILL", p.Pid)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func (c *cri) removeAllPods(t *testing.T) {
	t.Helper()
	cx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pods, err := c.rt.ListPodSandbox(cx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Errorf("list pods at clean-up: %v", err)
		return
	}
	for _, p := range pods.GetItems() {
		c.removePod(t, p.Id)
	}
}

// removePod stops and removes a pod, as the kubelet does.
func (c *cri) removePod(t *testing.T, id string) {
	t.Helper()
	cx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.rt.StopPodSandbox(cx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("stop pod %s: %v", id, err)
	}
	if _, err := c.rt.RemovePodSandbox(cx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("remove pod %s: %v", id, err)
	}
}

func (c *cri) pull(t *testing.T, image string) {
	t.Helper()
	if _, err := c.img.PullImage(ctx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatalf("pull %s: %v", image, err)
	}
}

// pod is a running pod sandbox of the test.
type pod struct {
	id     string
	config *runtime.PodSandboxConfig
	logDir string
}

// runPod starts a pod (podConfig); edit adjusts the config.
func (c *cri) runPod(t *testing.T, name string, edit ...func(*runtime.PodSandboxConfig)) *pod {
	t.Helper()
	cfg := c.podConfig(name)
	for _, e := range edit {
		e(cfg)
	}
	r, err := c.rt.RunPodSandbox(ctx(t), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("run pod %s: %v", name, err)
	}
	return &pod{id: r.PodSandboxId, config: cfg, logDir: cfg.LogDirectory}
}

// podConfig is a pod's config as the kubelet would give it: its own log
// dir and cgroup parent.
func (c *cri) podConfig(name string) *runtime.PodSandboxConfig {
	uid := randHex(16)
	c.ids[uid] = true
	logDir := filepath.Join(c.s.dir, "logs", uid)
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: "/cri-e2e-pod-" + uid,
			// What the kubelet sends for a pod that does not share its
			// PID namespace (CRI's zero value, POD, shares it).
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
			},
		},
	}
}

// create creates a busybox container running argv in p; edit adjusts the
// config. Its log is <name>.log in the pod's log dir.
func (c *cri) create(t *testing.T, p *pod, name string, argv []string, edit func(*runtime.ContainerConfig)) string {
	t.Helper()
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: busybox},
		Command:  argv,
		LogPath:  name + ".log",
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{},
			// The kubelet gives a container its pod's namespace modes.
			SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: p.config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
			},
		},
	}
	if edit != nil {
		edit(cfg)
	}
	r, err := c.rt.CreateContainer(ctx(t), &runtime.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	return r.ContainerId
}

func (c *cri) start(t *testing.T, id string) {
	t.Helper()
	if _, err := c.rt.StartContainer(ctx(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("start container %s: %v", id, err)
	}
}

// status returns the container's status and the init pid from the
// verbose info.
func (c *cri) status(t *testing.T, id string) (*runtime.ContainerStatus, int) {
	t.Helper()
	r, err := c.rt.ContainerStatus(ctx(t), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("status of container %s: %v", id, err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if raw := r.GetInfo()["info"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			t.Fatalf("decode status info of %s: %v: %s", id, err, raw)
		}
	}
	return r.Status, info.Pid
}

// waitState polls until the container is in state or the timeout passes.
func (c *cri) waitState(t *testing.T, id string, state runtime.ContainerState, timeout time.Duration) *runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := c.status(t, id)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s (%s) is %s after %v, want %s", st.GetMetadata().GetName(), id, st.State, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// monitors lists the pids of processes running the private binary other
// than the daemon itself: the monitors.
func (s *server) monitors(daemon int) []int {
	var out []int
	// A monitor runs the daemon's binary or its embedded shim (from a
	// memfd): either way its argv names its bundle, under our dir.
	for _, p := range ourProcesses(owner{dirs: []string{s.dir}}, s.bin) {
		if p.pid != daemon && strings.Contains(p.cmd, " monitor ") {
			out = append(out, p.pid)
		}
	}
	return out
}

// monitorOf returns the pid of the monitor of container id, 0 if none.
func (s *server) monitorOf(id string) int {
	for _, p := range ourProcesses(owner{dirs: []string{s.dir}}, s.bin) {
		if strings.Contains(p.cmd, " monitor ") && strings.Contains(p.cmd, id) {
			return p.pid
		}
	}
	return 0
}
