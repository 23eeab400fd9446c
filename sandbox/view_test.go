package sandbox_test

// What a user sees from inside a container of a pod: real pods from the
// Manager, real containers from the executor with the spec oci/spec builds
// for them, the kernel's answers read from inside. Root only.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
	"github.com/cri-server/cri-server/oci"
	_ "github.com/cri-server/cri-server/oci/nsenter"
	"github.com/cri-server/cri-server/oci/spec"
	"github.com/cri-server/cri-server/sandbox"
	"github.com/cri-server/cri-server/store"
)

// TestMain dispatches the re-execs, as cmd/cri-server's main does: the pod
// init of a shared PID namespace and the container init.
func TestMain(m *testing.M) {
	if sandbox.IsPodInit(os.Args) {
		sandbox.PodInitMain()
	}
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMain()
	}
	os.Exit(m.Run())
}

// viewEnv is one test's pods and containers: a Manager over a temp dir and a
// loopback-only network (no bridge, no veth: the pod's netns is what is
// under test, not CNI), an executor, and a busybox rootfs.
type viewEnv struct {
	t      *testing.T
	dir    string
	rootfs string
	cg     string
	pods   *sandbox.Manager
	rt     *oci.Runtime
	db     *store.DB
}

func newViewEnv(t *testing.T) *viewEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: pods create namespaces and mounts")
	}
	if _, err := os.Stat("/opt/cni/bin/loopback"); err != nil {
		t.Skip("needs the CNI plugins in /opt/cni/bin (hack/install-tools.sh)")
	}
	dir := t.TempDir()
	e := &viewEnv{t: t, dir: dir, cg: fmt.Sprintf("/podns-view-%d-%d", os.Getpid(), time.Now().UnixNano())}
	e.rootfs = busyboxRootfs(t, dir)
	confDir := filepath.Join(dir, "net.d")
	must(t, os.MkdirAll(confDir, 0o755))
	must(t, os.WriteFile(filepath.Join(confDir, "10-lo.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"podns-lo","plugins":[{"type":"loopback"}]}`), 0o644))
	db, err := store.Open(filepath.Join(dir, "meta.db"))
	must(t, err)
	e.db = db
	e.setCNIBin()
	e.rt, err = oci.New(oci.Config{StateDir: filepath.Join(dir, "oci"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)
	t.Cleanup(e.checkLeaks)
	return e
}

// setCNIBin (re)makes the pod Manager with plugins from dirs, then
// /opt/cni/bin.
func (e *viewEnv) setCNIBin(dirs ...string) {
	e.t.Helper()
	nets := cni.New(filepath.Join(e.dir, "net.d"), append(dirs, "/opt/cni/bin"))
	nets.SetCacheDir(filepath.Join(e.dir, "cni-cache"))
	var err error
	e.pods, err = sandbox.New(context.Background(), sandbox.Options{StateDir: filepath.Join(e.dir, "state"), DB: e.db, CNI: nets,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(e.t, err)
}

// checkLeaks fails the test on a mount under the temp dir, a cgroup of
// ours, a pod dir, or a child process (a pod init) left behind.
func (e *viewEnv) checkLeaks() {
	e.rt.Close()
	e.db.Close()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), e.dir) {
		e.t.Errorf("mount leaked under %s", e.dir)
	}
	// The kubelet's part of the tree (e.cg/<pod uid>) is the test's to
	// remove, as the kubelet does; a dir that still holds a process is a leak.
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if err := rmdirTree(filepath.Join(h, e.cg)); err != nil {
			e.t.Errorf("cgroup leaked: %v", err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.dir, "state", "pods")); len(ents) != 0 {
		e.t.Errorf("%d pod dirs left", len(ents))
	}
	if kids := children(); len(kids) > 0 {
		e.t.Errorf("child processes left: %v", kids)
	}
}

// runPod starts a pod and registers its removal.
func (e *viewEnv) runPod(cfg *runtime.PodSandboxConfig) *sandbox.Pod {
	e.t.Helper()
	if cfg.Metadata == nil {
		cfg.Metadata = &runtime.PodSandboxMetadata{Name: "view", Namespace: "ns", Uid: strconv.FormatInt(time.Now().UnixNano(), 36)}
	}
	if cfg.Linux == nil {
		cfg.Linux = &runtime.LinuxPodSandboxConfig{}
	}
	cfg.Linux.CgroupParent = e.cg + "/" + cfg.Metadata.Uid
	p, err := e.pods.Run(context.Background(), cfg, "")
	must(e.t, err)
	e.t.Cleanup(func() {
		ctx := context.Background()
		if err := e.pods.Stop(ctx, p.ID); err != nil {
			e.t.Errorf("stop pod: %v", err)
		}
		if err := e.pods.Remove(ctx, p.ID); err != nil {
			e.t.Errorf("remove pod: %v", err)
		}
	})
	return p
}

// exec runs sh -c script in a new container of pod p with the container's
// namespace options (nil: the pod's) and returns what it printed.
func (e *viewEnv) exec(p *sandbox.Pod, cfg *runtime.PodSandboxConfig, nso *runtime.NamespaceOption, script string) string {
	e.t.Helper()
	pidns := p.PIDNS
	if nso.GetPid() != runtime.NamespaceMode_POD {
		pidns = ""
	}
	id, c, r := e.start(p, cfg, nso, pidns, script)
	defer r.Close()
	defer e.rt.Delete(context.Background(), id, true)
	var out bytes.Buffer
	io.Copy(&out, r)
	st, err := c.Wait()
	must(e.t, err)
	if st.ExitCode() != 0 {
		e.t.Fatalf("container exited %d: %s", st.ExitCode(), out.String())
	}
	return out.String()
}

// start creates and starts a container running sh -c script; its output
// is on the returned pipe. The caller waits for it and deletes it.
func (e *viewEnv) start(p *sandbox.Pod, cfg *runtime.PodSandboxConfig, nso *runtime.NamespaceOption, pidns, script string) (string, *oci.Container, *os.File) {
	e.t.Helper()
	id := "c" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cc := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: id},
		Command:  []string{"sh", "-c", script},
		Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: nso}},
	}
	sp, err := spec.Generate(spec.Input{
		ID: id, Config: cc, Sandbox: cfg, SandboxID: p.ID, Rootfs: e.rootfs,
		NetNS: p.NetNS, IPCNS: p.IPCNS, UTSNS: p.UTSNS, PIDNS: pidns,
		HostnamePath: p.HostnamePath, HostsPath: p.HostsPath, ResolvPath: p.ResolvPath, ShmPath: p.ShmPath,
		CgroupParent: p.CgroupParent,
	})
	must(e.t, err)
	r, w, err := os.Pipe()
	must(e.t, err)
	ctx := context.Background()
	c, err := e.rt.Create(ctx, id, sp, oci.IO{Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		r.Close()
		e.t.Fatal(err)
	}
	if err := e.rt.Start(ctx, id); err != nil {
		r.Close()
		e.rt.Delete(ctx, id, true)
		e.t.Fatal(err)
	}
	return id, c, r
}

func TestContainerSeesPodFiles(t *testing.T) {
	e := newViewEnv(t)
	cfg := &runtime.PodSandboxConfig{
		Hostname: "view-host",
		DnsConfig: &runtime.DNSConfig{Servers: []string{"10.10.10.10"}, Searches: []string{"google.com"},
			Options: []string{"timeout:5"}},
	}
	p := e.runPod(cfg)
	got := e.exec(p, cfg, nil, "cat /etc/resolv.conf; echo ---; hostname; cat /etc/hostname; echo ---; cat /etc/hosts")
	parts := strings.Split(got, "---\n")
	if len(parts) != 3 {
		t.Fatalf("output: %q", got)
	}
	if want := "nameserver 10.10.10.10\nsearch google.com\noptions timeout:5\n"; parts[0] != want {
		t.Errorf("resolv.conf %q, want %q", parts[0], want)
	}
	if parts[1] != "view-host\nview-host\n" {
		t.Errorf("hostname and /etc/hostname: %q", parts[1])
	}
	if !strings.Contains(parts[2], "127.0.0.1\tlocalhost\n") {
		t.Errorf("/etc/hosts: %q", parts[2])
	}
}

// The pod's sysctls are set in its own namespaces: its containers read
// them, the node keeps its values.
func TestPodSysctlsInsideOnly(t *testing.T) {
	e := newViewEnv(t)
	sysctls := map[string]string{
		"kernel.shm_rmid_forced":              "1",
		"fs.mqueue.msg_max":                   "100",
		"kernel.msgmax":                       "4242",
		"net.ipv4.ip_unprivileged_port_start": "123",
		"net/ipv4/conf/all/accept_local":      "1",
	}
	host := map[string]string{}
	for k := range sysctls {
		host[k] = readSysctl(t, k)
	}
	cfg := &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{Sysctls: sysctls}}
	p := e.runPod(cfg)
	for k, want := range sysctls {
		path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if strings.Contains(k, "/") {
			path = "/proc/sys/" + k
		}
		if got := strings.TrimSpace(e.exec(p, cfg, nil, "cat "+path)); got != want {
			t.Errorf("%s inside = %q, want %q", k, got, want)
		}
		if got := readSysctl(t, k); got != host[k] {
			t.Errorf("%s on the node changed: %q, was %q", k, got, host[k])
		}
	}
}

func readSysctl(t *testing.T, key string) string {
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if strings.Contains(key, "/") {
		path = "/proc/sys/" + key
	}
	b, err := os.ReadFile(path)
	must(t, err)
	return strings.TrimSpace(string(b))
}

// IPC objects: a pod's containers share the pod's, not the node's; a pod
// with host IPC sees the node's. Segments are told apart by key: ids are
// per namespace and may coincide.
func TestIPCNamespaceModes(t *testing.T) {
	e := newViewEnv(t)
	hostKey := int(time.Now().UnixNano()&0x3fffffff) | 1
	hostSeg, err := unix.SysvShmGet(hostKey, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	must(t, err)
	defer unix.SysvShmCtl(hostSeg, unix.IPC_RMID, nil)

	podNSO := &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_POD}
	podCfg := &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{
		SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: podNSO}}}
	p := e.runPod(podCfg)
	// A segment made in the pod's namespace from outside: what one
	// container of the pod would leave for another.
	if out, err := exec.Command("nsenter", "--ipc="+p.IPCNS, "ipcmk", "-M", "4096").CombinedOutput(); err != nil {
		t.Fatalf("ipcmk in the pod: %v: %s", err, out)
	}
	out, err := exec.Command("nsenter", "--ipc="+p.IPCNS, "cat", "/proc/sysvipc/shm").Output()
	must(t, err)
	podKeys := shmKeys(string(out))
	if len(podKeys) != 1 {
		t.Fatalf("pod's ipc namespace holds %v, want one segment", podKeys)
	}
	var podKey string
	for k := range podKeys {
		podKey = k
	}

	nodeNSO := &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}
	nodeCfg := &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{
		SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: nodeNSO}}}
	hp := e.runPod(nodeCfg)

	tests := []struct {
		name              string
		pod               *sandbox.Pod
		cfg               *runtime.PodSandboxConfig
		nso               *runtime.NamespaceOption
		seesHost, seesPod bool
	}{
		{"pod ipc", p, podCfg, podNSO, false, true},
		{"host ipc", hp, nodeCfg, nodeNSO, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := shmKeys(e.exec(tc.pod, tc.cfg, tc.nso, "cat /proc/sysvipc/shm"))
			if keys[strconv.Itoa(hostKey)] != tc.seesHost {
				t.Errorf("node's segment (key %d) visible = %v, want %v", hostKey, !tc.seesHost, tc.seesHost)
			}
			if keys[podKey] != tc.seesPod {
				t.Errorf("pod's segment (key %s) visible = %v, want %v", podKey, !tc.seesPod, tc.seesPod)
			}
		})
	}
}

// shmKeys reads the key column of /proc/sysvipc/shm.
func shmKeys(table string) map[string]bool {
	keys := map[string]bool{}
	for i, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); i > 0 && len(f) > 1 {
			keys[f[0]] = true
		}
	}
	return keys
}

// A sysctl of a device CNI creates (net.ipv4.conf.eth0.*) is set after ADD,
// in the pod's netns. The plugin here makes eth0 a bridge device (no dummy module here).
func TestDeviceSysctlAfterCNI(t *testing.T) {
	e := newViewEnv(t)
	bin := filepath.Join(e.dir, "cni-bin")
	must(t, os.MkdirAll(bin, 0o755))
	plugin := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) cat >/dev/null
  nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type bridge || exit 1
  echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'"$CNI_IFNAME"'","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.250.0.2/24","interface":0}]}';;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}';;
*) cat >/dev/null;;
esac
`
	must(t, os.WriteFile(filepath.Join(bin, "crit-dummy"), []byte(plugin), 0o755))
	// Sorts before the loopback conflist: the Manager uses the first.
	must(t, os.WriteFile(filepath.Join(e.dir, "net.d", "00-dummy.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"podns-dummy","plugins":[{"type":"crit-dummy"}]}`), 0o644))
	e.setCNIBin(bin)
	sysctls := map[string]string{"net.ipv4.conf.eth0.accept_local": "1", "net.ipv4.conf.all.accept_local": "1"}
	cfg := &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{Sysctls: sysctls}}
	p := e.runPod(cfg)
	got := e.exec(p, cfg, nil, "cat /proc/sys/net/ipv4/conf/eth0/accept_local /proc/sys/net/ipv4/conf/all/accept_local")
	if got != "1\n1\n" {
		t.Fatalf("eth0 and all accept_local inside: %q, want 1 and 1", got)
	}
}
