package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/monitor/monitortest"
	// The C monitor takes `monitor` over, as in the shim.
	_ "github.com/cri-server/cri-server/monitor/cmon"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/sandbox"
)

func TestMain(m *testing.M) {
	// A shared PID namespace's init is this test binary re-executed.
	if sandbox.IsPodInit(os.Args) {
		sandbox.PodInitMain()
	}
	// The executor's container init (exec_helpers_test.go runs containers).
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMain()
	}
	// A daemon a test can kill -9 (sandbox_pool_test.go).
	if len(os.Args) > 2 && os.Args[1] == serveArg {
		serveMain(os.Args[2])
	}
	// A container's monitor is this test binary too, with a plain-process
	// stand-in for the executor (container_test.go's fakes).
	monitor.NewExecutor = monitortest.New
	if code, ok := monitor.Verb(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// podEnv is one test's network world: its own bridge, subnet, host-local
// data dir and daemon dirs, all removed (and checked) at the end.
type podEnv struct {
	t       testing.TB
	dir     string
	cfg     *config.Config
	bridge  string
	subnet  string // "10.a.b"
	ipamDir string
	binDir  string
	masq    bool   // ipMasq in the bridge plugin, as in the default conflists
	tmpfs   string // a tmpfs this env mounted (benchmarks: /run is tmpfs on nodes)
	stop    func()
	conn    *grpc.ClientConn
	rt      runtime.RuntimeServiceClient
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: pods create namespaces, mounts and veths")
	}
	if _, err := os.Stat("/opt/cni/bin/bridge"); err != nil {
		t.Skip("needs the CNI plugins in /opt/cni/bin (hack/install-tools.sh)")
	}
}

// unusedSubnet picks a "10.a.b" /24 that no iptables rule and no local
// address mentions, so that the leak check's look for it in iptables-save
// cannot match another run's rules.
func unusedSubnet(t testing.TB) string {
	rules, _ := exec.Command("iptables-save").Output()
	addrs, _ := exec.Command("ip", "-o", "addr").Output()
	for range 100 {
		sn := fmt.Sprintf("10.%d.%d", 100+mrand.IntN(150), mrand.IntN(256))
		if !bytes.Contains(rules, []byte(sn+".")) && !bytes.Contains(addrs, []byte(" "+sn+".")) {
			return sn
		}
	}
	t.Fatal("no unused /24 for the test network")
	return ""
}

func newPodEnv(t testing.TB) *podEnv {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	e := &podEnv{
		t: t, dir: dir,
		bridge:  "crit-" + randHex(4),
		subnet:  unusedSubnet(t),
		ipamDir: filepath.Join(dir, "ipam"),
		binDir:  filepath.Join(dir, "bin"),
	}
	cfg := config.Default()
	cfg.Root = filepath.Join(dir, "root")
	cfg.State = filepath.Join(dir, "state")
	cfg.Listen = filepath.Join(dir, "state", "cri.sock")
	cfg.CNI.ConfDir = filepath.Join(dir, "net.d")
	cfg.CNI.BinDirs = []string{e.binDir, "/opt/cni/bin"}
	cfg.Metrics.Address = "127.0.0.1:0" // other test processes share this machine
	// A small pool: every test daemon fills its own, and the pool tests
	// wait for it to be full.
	cfg.CNI.NamespacePool = 4
	e.cfg = cfg
	for _, d := range []string{cfg.CNI.ConfDir, e.binDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.cleanup)
	return e
}

// conflist writes the bridge conflist, with extra plugins after portmap.
func (e *podEnv) conflist(extra ...string) {
	e.t.Helper()
	e.writeConflist(fmt.Sprintf(`[[{"subnet":"%s.0/24"}]]`, e.subnet), extra...)
}

// dualStackConflist adds an IPv6 range (listed first, to show that the
// IPv4 address still comes first as the primary IP).
func (e *podEnv) dualStackConflist() {
	e.t.Helper()
	v6 := "fd" + randHex(1) + ":" + randHex(2) + "::/64"
	e.writeConflist(fmt.Sprintf(`[[{"subnet":%q}],[{"subnet":"%s.0/24"}]]`, v6, e.subnet))
}

func (e *podEnv) writeConflist(ranges string, extra ...string) {
	e.t.Helper()
	plugins := []string{fmt.Sprintf(`{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":%t,"hairpinMode":true,
		"ipam":{"type":"host-local","dataDir":%q,"ranges":%s,"routes":[{"dst":"0.0.0.0/0"}]}}`,
		e.bridge, e.masq, e.ipamDir, ranges),
		`{"type":"portmap","capabilities":{"portMappings":true},"snat":true}`}
	plugins = append(plugins, extra...)
	data := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"crit","plugins":[%s]}`, strings.Join(plugins, ","))
	if err := os.WriteFile(filepath.Join(e.cfg.CNI.ConfDir, "10-crit.conflist"), []byte(data), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *podEnv) start() {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	waitServing(e.t, e.cfg.Listen, done)
	conn, err := grpc.NewClient("unix://"+e.cfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.conn, e.rt = conn, runtime.NewRuntimeServiceClient(conn)
	e.stop = func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
		e.stop = nil
	}
}

func (e *podEnv) cleanup() {
	if e.stop != nil {
		// Remove what the test left, so that the leak checks below judge
		// the code and not an early t.Fatal.
		if l, err := e.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{}); err == nil {
			for _, p := range l.Items {
				e.rt.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id})
			}
		}
		e.stop()
	}
	if e.tmpfs != "" {
		unix.Unmount(e.tmpfs, unix.MNT_DETACH)
	}
	e.checkLeaks()
	exec.Command("ip", "link", "del", e.bridge).Run()
}

// checkLeaks asserts nothing of the test's pods is left in the kernel or
// on disk.
func (e *podEnv) checkLeaks() {
	t := e.t
	t.Helper()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, e.dir) {
			t.Errorf("mount left: %s", l)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join("/sys/class/net", e.bridge, "brif")); len(ents) > 0 {
		t.Errorf("veths left on %s: %d", e.bridge, len(ents))
	}
	if ips := e.heldIPs(); len(ips) > 0 {
		t.Errorf("host-local still holds %v", ips)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.cfg.State, "pods")); len(ents) > 0 {
		t.Errorf("pod dirs left: %d", len(ents))
	}
	out, _ := exec.Command("iptables-save").Output()
	if bytes.Contains(out, []byte(e.bridge)) || bytes.Contains(out, []byte(e.subnet+".")) {
		t.Errorf("iptables rules left for %s", e.bridge)
	}
}

// heldIPs lists the addresses host-local has allocated.
func (e *podEnv) heldIPs() []string {
	var ips []string
	ents, _ := os.ReadDir(filepath.Join(e.ipamDir, "crit"))
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), e.subnet+".") || strings.HasPrefix(d.Name(), "fd") {
			ips = append(ips, d.Name())
		}
	}
	return ips
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "crit", Uid: randHex(8)},
		Hostname: name,
		Labels:   map[string]string{"app": name},
		Linux:    &runtime.LinuxPodSandboxConfig{},
	}
}

func (e *podEnv) run(cfg *runtime.PodSandboxConfig) string {
	e.t.Helper()
	r, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		e.t.Fatalf("RunPodSandbox %s: %v", cfg.Metadata.Name, err)
	}
	return r.PodSandboxId
}

func (e *podEnv) status(id string) (*runtime.PodSandboxStatus, map[string]any) {
	e.t.Helper()
	r, err := e.rt.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		e.t.Fatalf("PodSandboxStatus: %v", err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(r.Info["info"]), &info); err != nil {
		e.t.Fatalf("verbose info: %v", err)
	}
	return r.Status, info
}

func (e *podEnv) stopRemove(id string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		e.t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		e.t.Fatalf("RemovePodSandbox: %v", err)
	}
}

// nsenter runs a command in the given namespaces, e.g. "--net=PATH".
func nsenter(t *testing.T, ns []string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("nsenter", append(ns, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func waitServing(t testing.TB, path string, done chan error) {
	t.Helper()
	for i := 0; i < 500; i++ {
		select {
		case err := <-done:
			t.Fatalf("server exited early: %v", err)
		default:
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("socket %s never answered", path)
}

// failingAddConflist installs crit-fail, a plugin that refuses every ADD,
// and chains it after the bridge.
func (e *podEnv) failingAddConflist() {
	e.t.Helper()
	plugin := "#!/bin/sh\ncase \"$CNI_COMMAND\" in\n" +
		"ADD) cat >/dev/null; echo '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"crit-fail refuses ADD\"}'; exit 1;;\n" +
		"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}';;\nesac\nexit 0\n"
	if err := os.WriteFile(filepath.Join(e.binDir, "crit-fail"), []byte(plugin), 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.conflist(`{"type":"crit-fail"}`)
}
