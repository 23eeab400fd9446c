package monitor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/monitor"
	// The C monitor takes `monitor` over, as in the shim
	// (CRI_SERVER_GO_MONITOR=1 tests the Go one).
	_ "github.com/cri-server/cri-server/monitor/cmon"
	"github.com/cri-server/cri-server/monitor/monitortest"
)

func TestMain(m *testing.M) {
	monitor.NewExecutor = monitortest.New
	if len(os.Args) > 1 {
		if code, ok := monitor.Verb(os.Args[1:]); ok {
			os.Exit(code)
		}
		switch os.Args[1] {
		case "fake-daemon":
			os.Exit(fakeDaemon(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}

// fakeDaemon spawns and starts a monitor like cri-server does, reports, and
// then waits to be killed -9.
func fakeDaemon(args []string) int {
	bundle, logPath := args[0], args[1]
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sh", "-c", "read x; echo after $x; exit 3"}}}
	if _, err := monitor.Spawn(context.Background(), os.Args[0], bundle, monitor.Config{ID: "c", LogPath: logPath, OCIStateDir: bundle, Stdin: true}, spec); err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := monitor.Call(context.Background(), bundle, monitor.Request{Op: monitor.OpStart}); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ok")
	select {}
}

type ctr struct {
	bundle, log string
}

func spawn(t *testing.T, args ...string) ctr {
	t.Helper()
	dir := t.TempDir()
	c := ctr{bundle: filepath.Join(dir, "b"), log: filepath.Join(dir, "c.log")}
	os.Mkdir(c.bundle, 0o700)
	spec := &specs.Spec{Process: &specs.Process{Args: args, Env: []string{"PATH=/usr/bin:/bin"}}}
	if _, err := monitor.Spawn(context.Background(), os.Args[0], c.bundle, monitor.Config{ID: "c1", LogPath: c.log, OCIStateDir: c.bundle}, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Leak check: the monitor removes its socket when it exits.
		monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpKill, Signal: 9})
		for i := 0; i < 300; i++ {
			if _, err := os.Stat(filepath.Join(c.bundle, monitor.SocketFile)); errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("monitor still running after the test")
	})
	return c
}

func call(t *testing.T, c ctr, op string) *monitor.Reply {
	t.Helper()
	r, err := monitor.Call(context.Background(), c.bundle, monitor.Request{Op: op})
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return r
}

func logLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, rest, _ := strings.Cut(sc.Text(), " ")
		out = append(out, rest)
	}
	return out
}

func TestMonitorRunsAndRecords(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		oom      bool
		wantCode int
		wantLog  []string
	}{
		{name: "success", script: "echo out; echo err >&2; printf tail", wantCode: 0,
			wantLog: []string{"stdout F out", "stderr F err", "stdout F tail"}},
		{name: "exit code", script: "echo bye; exit 7", wantCode: 7, wantLog: []string{"stdout F bye"}},
		{name: "signal", script: "kill -TERM $$", wantCode: 128 + 15},
		{name: "oom", script: "exit 137", oom: true, wantCode: 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := spawn(t, "/bin/sh", "-c", tc.script)
			// The stand-in's OOM counter lives in <state>/<id>/oom_kill.
			os.MkdirAll(filepath.Join(c.bundle, "c1"), 0o700)
			if tc.oom {
				// Write the counter from the test, before start.
				os.WriteFile(filepath.Join(c.bundle, "c1", monitortest.OOMFile), []byte("1"), 0o600)
			}
			if r := call(t, c, monitor.OpStatus); r.Started || r.Exit != nil {
				t.Fatalf("created container: %+v", r)
			}
			if r := call(t, c, monitor.OpStart); !r.Started || r.Pid == 0 {
				t.Fatalf("start: %+v", r)
			}
			r := call(t, c, monitor.OpWait)
			if r.Exit == nil || r.Exit.Code != tc.wantCode || r.Exit.OOMKilled != tc.oom || r.Exit.ExitedAt.IsZero() {
				t.Fatalf("exit %+v", r.Exit)
			}
			e, err := monitor.ReadExit(c.bundle)
			if err != nil || e.Code != tc.wantCode {
				t.Fatalf("exit record %+v %v", e, err)
			}
			got := logLines(t, c.log)
			if tc.name == "success" { // stdout/stderr order across streams is not defined
				if len(got) != 3 || !contains(got, "stdout F out") || !contains(got, "stderr F err") || !contains(got, "stdout F tail") {
					t.Fatalf("log %q", got)
				}
				return
			}
			if strings.Join(got, "|") != strings.Join(tc.wantLog, "|") {
				t.Fatalf("log %q want %q", got, tc.wantLog)
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestKillBeforeStartAndReopen(t *testing.T) {
	c := spawn(t, "/bin/sh", "-c", "while :; do echo tick; sleep 0.01; done")
	call(t, c, monitor.OpStart)
	time.Sleep(50 * time.Millisecond)
	os.Rename(c.log, c.log+".1")
	call(t, c, monitor.OpReopenLog)
	time.Sleep(50 * time.Millisecond)
	if _, err := monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpKill, Signal: int(syscall.SIGKILL), All: true}); err != nil {
		t.Fatal(err)
	}
	r := call(t, c, monitor.OpWait)
	if r.Exit.Code != 137 {
		t.Fatalf("exit %+v", r.Exit)
	}
	if len(logLines(t, c.log+".1")) == 0 || len(logLines(t, c.log)) == 0 {
		t.Fatal("output missing from one side of the reopen")
	}

	c2 := spawn(t, "/bin/true")
	call(t, c2, monitor.OpKill) // signal 0 before start: no-op
	monitor.Call(context.Background(), c2.bundle, monitor.Request{Op: monitor.OpKill, Signal: 9})
	if r := call(t, c2, monitor.OpWait); r.Exit.Code != 137 {
		t.Fatalf("killed before start: %+v", r.Exit)
	}
}

func TestCreateFailureReported(t *testing.T) {
	dir := t.TempDir()
	_, err := monitor.Spawn(context.Background(), os.Args[0], dir, monitor.Config{ID: "x", OCIStateDir: dir},
		&specs.Spec{Process: &specs.Process{Args: []string{"/fail-create"}}})
	if err == nil || !strings.Contains(err.Error(), "create refused") {
		t.Fatalf("create error not carried back: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, monitor.SocketFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("failed monitor left a socket")
	}
}

// kill -9 of the daemon must not stop the container nor lose its exit.
func TestExitRecordSurvivesDaemon(t *testing.T) {
	dir := t.TempDir()
	bundle, logPath := filepath.Join(dir, "b"), filepath.Join(dir, "c.log")
	os.Mkdir(bundle, 0o700)
	d := exec.Command(os.Args[0], "fake-daemon", bundle, logPath)
	out, _ := d.StdoutPipe()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ok\n" {
		d.Process.Kill()
		d.Wait()
		t.Fatalf("fake daemon: %q", line)
	}
	d.Process.Signal(syscall.SIGKILL)
	d.Wait()
	// The daemon is gone; the container runs on and still has its stdin.
	r, err := monitor.Call(context.Background(), bundle, monitor.Request{Op: monitor.OpStatus})
	if err != nil || !r.Started || r.Exit != nil {
		t.Fatalf("after daemon death: %+v %v", r, err)
	}
	if err := syscall.Kill(r.Pid, 0); err != nil {
		t.Fatalf("container process gone with the daemon: %v", err)
	}
	// Make it exit while "the daemon is down" by killing its sh's read.
	monitor.Call(context.Background(), bundle, monitor.Request{Op: monitor.OpKill, Signal: int(syscall.SIGTERM)})
	for i := 0; i < 500 && !monitor.HasExit(bundle); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	e, err := monitor.ReadExit(bundle)
	if err != nil || e.Code != 128+15 {
		t.Fatalf("exit record after daemon death: %+v %v", e, err)
	}
	for i := 0; i < 300; i++ {
		if _, err := os.Stat(filepath.Join(bundle, monitor.SocketFile)); errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("monitor did not exit after recording")
}

// BenchmarkMonitorRSS reports the resident memory of one idle monitor
// holding a running container (kB), RSS and PSS, the cost paid per
// container: the C one, or with CRI_SERVER_GO_MONITOR=1 the Go one. (The
// test binary is larger than the shim and its pages are shared with
// fewer processes: hack/bench-cri.sh measures the real thing.)
func BenchmarkMonitorRSS(b *testing.B) {
	var total, pss int
	for b.Loop() {
		dir := b.TempDir()
		spec := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sh", "-c", "exec sleep 100"}}}
		if _, err := monitor.Spawn(context.Background(), os.Args[0], dir, monitor.Config{ID: "c", LogPath: filepath.Join(dir, "log"), OCIStateDir: dir}, spec); err != nil {
			b.Fatal(err)
		}
		r, err := monitor.Call(context.Background(), dir, monitor.Request{Op: monitor.OpStart})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		total += procKB(b, fmt.Sprintf("/proc/%d/status", r.Monitor), "VmRSS:")
		pss += procKB(b, fmt.Sprintf("/proc/%d/smaps_rollup", r.Monitor), "Pss:")
		monitor.Call(context.Background(), dir, monitor.Request{Op: monitor.OpKill, Signal: 9, All: true})
		monitor.Call(context.Background(), dir, monitor.Request{Op: monitor.OpWait})
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(total)/float64(b.N), "rss-kB")
	b.ReportMetric(float64(pss)/float64(b.N), "pss-kB")
}

func procKB(b *testing.B, path, key string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, key) {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	b.Fatalf("no %s in %s", key, path)
	return 0
}
