package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The e2e test needs root, the local registry (hack/registry.sh) and the test
// images (hack/test-images.sh; hack/critest.sh runs both) and takes minutes:
// it runs only with CRI_SERVER_E2E=1. CRI_SERVER_BIN names a prebuilt
// binary; otherwise the test builds one with hack/build.sh.
const gateEnv = "CRI_SERVER_E2E"

// registryAddr is where hack/registry.sh serves the test images.
func registryAddr() string {
	if a := os.Getenv("REGISTRY_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:5000"
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// server is one cri-server process under test and its private world.
type server struct {
	dir, sock, log, bin string
	bridge, net         string
	cmd                 *exec.Cmd
	done                chan struct{} // closed when the daemon has exited
}

// freeSubnet picks a /24 in 10.200.0.0-10.250.255.0 that no local route
// covers, so our bridge cannot collide with a node's cni0 or a
// concurrent run's.
func freeSubnet(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for range 100 {
		a, _ := rand.Int(rand.Reader, big.NewInt(51))
		b, _ := rand.Int(rand.Reader, big.NewInt(256))
		_, cand, _ := net.ParseCIDR(fmt.Sprintf("10.%d.%d.0/24", 200+a.Int64(), b.Int64()))
		clash := false
		for _, addr := range addrs {
			if ipn, ok := addr.(*net.IPNet); ok && (cand.Contains(ipn.IP) || ipn.Contains(cand.IP)) {
				clash = true
			}
		}
		if !clash {
			return cand.String()
		}
	}
	t.Fatal("no free /24 for the test bridge")
	return ""
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir, err := os.MkdirTemp("", "cri-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	id := randHex(4)
	s := &server{
		dir:    dir,
		sock:   filepath.Join(dir, "state", "cri-server.sock"),
		log:    filepath.Join(dir, "server.log"),
		bin:    filepath.Join(dir, "cri-server"),
		bridge: "crie2e" + id,
		net:    "cri-e2e-" + id,
	}
	for _, d := range []string{"root", "state", "net.d", "cni-ipam"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	// A private copy of the binary: a process running it is this run's.
	// Without CRI_SERVER_BIN, the product as hack/build.sh makes it, with
	// the embedded shim that runs the monitors and inits.
	src := os.Getenv("CRI_SERVER_BIN")
	if src == "" {
		build := exec.Command("hack/build.sh")
		build.Dir = repoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build cri-server: %v\n%s", err, out)
		}
		src = filepath.Join(repoRoot(t), "_output", "bin", "cri-server")
	}
	if err := copyFile(src, s.bin); err != nil {
		t.Fatalf("copy cri-server binary: %v", err)
	}

	reg := registryAddr()
	config := fmt.Sprintf(`root = %q
state = %q
listen = %q
log_level = "debug"
cgroup_driver = "cgroupfs"

# A port of its own: runs of other worktrees share this machine.
[metrics]
address = "127.0.0.1:0"

[cni]
conf_dir = %q
bin_dirs = ["/opt/cni/bin"]

# Until image mirrors work, the server reaches the test images through these:
# hack/test-images.sh pushes them under their upstream repository paths.
[registry]
insecure = [%[5]q]
[registry.mirrors."registry.k8s.io"]
endpoints = ["http://%[5]s"]
[registry.mirrors."gcr.io"]
endpoints = ["http://%[5]s"]
[registry.mirrors."k8s.gcr.io"]
endpoints = ["http://%[5]s"]
[registry.mirrors."docker.io"]
endpoints = ["http://%[5]s"]

`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), s.sock, filepath.Join(dir, "net.d"), reg)
	writeFile(t, filepath.Join(dir, "config.toml"), config)

	// Our own bridge name, subnet and IPAM store: nothing shared with the
	// node's cni0 or with a concurrent run.
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       s.net,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": s.bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": filepath.Join(dir, "cni-ipam"),
					"ranges":  [][]map[string]string{{{"subnet": freeSubnet(t)}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, _ := json.MarshalIndent(conflist, "", "  ")
	writeFile(t, filepath.Join(dir, "net.d", "10-"+s.net+".conflist"), string(b))
	return s
}

func (s *server) start(t *testing.T) {
	t.Helper()
	// Appended: a restarted daemon's log follows the first one's, and the
	// leak check needs the ids both logged.
	logf, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	serving := strings.Count(readString(s.log), `msg="serving CRI"`)
	s.cmd = exec.Command(s.bin, "serve", "--config", filepath.Join(s.dir, "config.toml"))
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on go test must not reach it before
	// the test's own clean-up does.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start cri-server: %v", err)
	}
	logf.Close()
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// This daemon's socket: after a kill -9, a child of the old one
		// between fork and exec may still hold the old listener for a moment.
		if c, err := net.Dial("unix", s.sock); err == nil && strings.Count(readString(s.log), `msg="serving CRI"`) > serving {
			c.Close()
			break
		} else if err == nil {
			c.Close()
		}
		select {
		case <-s.done:
			t.Fatalf("cri-server exited before serving (state lock held by: %s):\n%s",
				lockHolders(filepath.Join(s.dir, "state", "cri-server.lock")), tail(s.log, 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cri-server socket %s not up after 30s:\n%s", s.sock, tail(s.log, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the daemon to exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	p := s.cmd.Process
	s.cmd = nil
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("cri-server (pid %d) still running 30s after SIGTERM; killing it", p.Pid)
		_ = p.Kill()
		<-s.done
	}
}

func (s *server) crictl(t *testing.T, args ...string) []byte {
	t.Helper()
	ep := "unix://" + s.sock
	cmd := exec.Command("crictl", append([]string{"--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "30s"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crictl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func TestCritest(t *testing.T) {
	if os.Getenv(gateEnv) != "1" {
		t.Skipf("set %s=1 to run (needs root, hack/registry.sh and the test images)", gateEnv)
	}
	if os.Getuid() != 0 {
		t.Fatal("the e2e test runs as root")
	}
	root := repoRoot(t)
	musts, mustOrder, err := ReadSpecList(filepath.Join(root, "test/e2e/critest-must-pass.txt"))
	if err != nil {
		t.Fatal(err)
	}
	excluded, _, err := ReadSpecList(filepath.Join(root, "test/e2e/critest-excluded.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range musts {
		if _, ok := excluded[name]; ok {
			t.Errorf("spec both must pass and is excluded: %q", name)
		}
	}

	before := snapshot(t)
	s := newServer(t)
	o := owner{dirs: []string{s.dir}, bridge: s.bridge, net: s.net}
	defer func() {
		s.stop(t)
		o.ids = idsFromLog(s.log)
		keepLog(t, root, s.log)
		left := leftovers(t, before, o, s.bin)
		deleteBridge(t, s.bridge)
		for _, l := range left {
			t.Errorf("left behind: %s", l)
		}
		if err := os.RemoveAll(s.dir); err != nil {
			t.Errorf("remove %s: %v", s.dir, err)
		}
	}()
	s.start(t)

	t.Run("crictl version", func(t *testing.T) {
		out := string(s.crictl(t, "version"))
		for _, want := range []string{"RuntimeName:  cri-server", "RuntimeApiVersion:  v1"} {
			if !strings.Contains(out, want) {
				t.Errorf("crictl version lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("crictl info", func(t *testing.T) {
		var info struct {
			Status struct {
				Conditions []struct {
					Type    string `json:"type"`
					Status  bool   `json:"status"`
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"conditions"`
			} `json:"status"`
		}
		out := s.crictl(t, "info")
		if err := json.Unmarshal(out, &info); err != nil {
			t.Fatalf("decode crictl info: %v\n%s", err, out)
		}
		got := map[string]bool{}
		for _, c := range info.Status.Conditions {
			got[c.Type] = c.Status
			t.Logf("%s=%v %s %s", c.Type, c.Status, c.Reason, c.Message)
		}
		if !got["RuntimeReady"] {
			t.Errorf("RuntimeReady is not true")
		}
		if !got["NetworkReady"] {
			t.Errorf("NetworkReady is not true with a bridge conflist in the conf dir")
		}
	})

	report := filepath.Join(root, "_output", "critest-e2e")
	if err := os.MkdirAll(report, 0o755); err != nil {
		t.Fatal(err)
	}
	timeout := 40 * time.Minute
	if dl, ok := t.Deadline(); ok {
		timeout = time.Until(dl) - 2*time.Minute // room to stop and check for leaks
	}
	if timeout < time.Minute {
		t.Fatalf("go test -timeout too short for critest (left: %v); use -timeout 60m", timeout)
	}
	// CRITEST_FOCUS narrows the run to matching specs (a ginkgo regexp),
	// for a quick loop while working on one area; must-pass specs outside
	// the focus are then not required.
	focus := os.Getenv("CRITEST_FOCUS")
	var args []string
	if focus != "" {
		args = append(args, "-ginkgo.focus", focus)
	}
	// CRITEST_ARGS adds critest flags, e.g. "-websocket-exec
	// -websocket-attach" for a pass of the streaming specs over websocket.
	args = append(args, strings.Fields(os.Getenv("CRITEST_ARGS"))...)
	cmd := exec.Command(filepath.Join(root, "hack/critest.sh"), args...)
	cmd.Env = append(os.Environ(),
		"CRI_SOCKET="+s.sock,
		"CRITEST_REPORT_DIR="+report,
		fmt.Sprintf("CRITEST_TIMEOUT=%ds", int(timeout.Seconds())),
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err = cmd.Run()
	fmt.Print(out.String()) // the totals and failing specs, shown with or without -v
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
		t.Fatalf("hack/critest.sh: %v (JUnit and log in %s)", err, report)
	}

	sum, err := ParseJUnitFile(filepath.Join(report, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var missed []string
	for _, name := range mustOrder {
		switch st := sum.Status(name); st {
		case "passed":
		case "":
			if focus == "" {
				missed = append(missed, name+" (not in the run: renamed upstream?)")
			}
		case "skipped":
			if focus == "" {
				missed = append(missed, name+" (skipped)")
			}
		default:
			missed = append(missed, name+" ("+st+")")
		}
	}
	if len(missed) > 0 {
		t.Errorf("%d of %d must-pass specs did not pass (test/e2e/critest-must-pass.txt; report %s/junit.xml):\n  %s",
			len(missed), len(musts), report, strings.Join(missed, "\n  "))
	}
}

func keepLog(t *testing.T, root, log string) {
	t.Helper()
	dst := filepath.Join(root, "_output", "critest-e2e", "server.log")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
		_ = copyFile(log, dst)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockHolders names the processes holding the state dir's lock file: why a
// restart found the state dir taken.
func lockHolders(path string) string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); l == path {
				raw, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
				out = append(out, e.Name()+" ("+strings.ReplaceAll(string(raw), "\x00", " ")+")")
			}
		}
	}
	return strings.Join(out, ", ")
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
