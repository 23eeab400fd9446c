package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDaemonKill9 is issue 6's promise: kill -9 of cri-server loses no
// container, no exit code and no log line. A pod runs a container that logs
// a numbered line every 10 ms (ticker), one that exits 7 while the daemon is
// down (exiter), and one created but not started (idle). The daemon is
// killed, and restarted on the same root and state once the exiter is gone.
func TestDaemonKill9(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	c.pull(t, busybox)
	p := c.runPod(t, "kill9")

	ticker := c.create(t, p, "ticker", []string{"sh", "-c", `i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 10000; done`}, nil)
	// 100 lines at once, then the exit 3 s later: the daemon is long dead by then.
	exiter := c.create(t, p, "exiter", []string{"sh", "-c", `for i in $(seq 1 100); do echo "before $i"; done; sleep 3; echo "while down"; echo "on stderr" >&2; exit 7`}, nil)
	idle := c.create(t, p, "idle", []string{"sh", "-c", `echo "idle started"; exec sleep 3600`}, nil)
	// Its monitor is killed while the daemon is down (CRI-O issue 6295: such
	// a container was reported running forever).
	orphan := c.create(t, p, "orphan", []string{"sleep", "3600"}, nil)
	c.start(t, ticker)
	c.start(t, exiter)
	c.start(t, orphan)
	tickerLog := filepath.Join(p.logDir, "ticker.log")
	waitLog(t, tickerLog, "tick 20", 10*time.Second)

	pids := map[string]int{}
	for name, id := range map[string]string{"ticker": ticker, "exiter": exiter, "idle": idle, "orphan": orphan} {
		st, pid := c.status(t, id)
		if pid <= 0 {
			t.Fatalf("%s: no pid in the verbose status", name)
		}
		pids[name] = pid
		if name == "exiter" && st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("exiter is %s before the kill; it must exit while the daemon is down", st.State)
		}
	}
	daemon := c.s.cmd.Process.Pid
	monitors := c.s.monitors(daemon)
	if len(monitors) == 0 {
		t.Fatalf("no monitor process of %s found", c.s.bin)
	}
	startedBefore, _ := c.status(t, exiter)

	c.s.kill9(t)
	downAt := time.Now()
	for _, pid := range monitors {
		if !alive(pid) {
			t.Errorf("monitor %d died with the daemon", pid)
		}
	}
	for name, pid := range pids {
		if !alive(pid) {
			t.Errorf("container %s (pid %d) died with the daemon", name, pid)
		}
	}
	orphanMonitor := c.s.monitorOf(orphan)
	if orphanMonitor == 0 {
		t.Fatalf("no monitor process for container %s", orphan)
	}
	if err := syscall.Kill(orphanMonitor, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the orphan's monitor: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pids["exiter"]) {
		if time.Now().After(deadline) {
			t.Fatalf("exiter (pid %d) still running 10s after the kill", pids["exiter"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // ticker lines while the daemon is down
	upAt := time.Now()
	c.s.start(t)
	c.connect(t)

	t.Run("ticker still running, same pid", func(t *testing.T) {
		st, pid := c.status(t, ticker)
		if st.State != runtime.ContainerState_CONTAINER_RUNNING || pid != pids["ticker"] {
			t.Errorf("ticker is %s with pid %d, want RUNNING with pid %d", st.State, pid, pids["ticker"])
		}
	})
	t.Run("exiter exited 7 while the daemon was down", func(t *testing.T) {
		st := c.waitState(t, exiter, runtime.ContainerState_CONTAINER_EXITED, 5*time.Second)
		fin := time.Unix(0, st.FinishedAt)
		if st.ExitCode != 7 || st.Reason != "Error" {
			t.Errorf("exit code %d reason %q, want 7 and Error", st.ExitCode, st.Reason)
		}
		if fin.Before(downAt) || fin.After(upAt) {
			t.Errorf("finished at %s, want within the daemon's down time %s .. %s", fin, downAt, upAt)
		}
		if st.StartedAt != startedBefore.StartedAt || st.CreatedAt != startedBefore.CreatedAt {
			t.Errorf("created/started at %d/%d after the restart, %d/%d before",
				st.CreatedAt, st.StartedAt, startedBefore.CreatedAt, startedBefore.StartedAt)
		}
		var want []string
		for i := 1; i <= 100; i++ {
			want = append(want, fmt.Sprintf("stdout before %d", i))
		}
		want = append(want, "stdout while down", "stderr on stderr")
		// The two streams are two pipes: their relative order is lost.
		got := linesOf(t, filepath.Join(p.logDir, "exiter.log"))
		byStream := func(a, b string) int { return strings.Compare(a[:6], b[:6]) }
		slices.SortStableFunc(got, byStream)
		slices.SortStableFunc(want, byStream)
		if !slices.Equal(got, want) {
			t.Errorf("exiter's log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("idle still created, then starts", func(t *testing.T) {
		st, pid := c.status(t, idle)
		if st.State != runtime.ContainerState_CONTAINER_CREATED || pid != pids["idle"] {
			t.Fatalf("idle is %s with pid %d, want CREATED with pid %d", st.State, pid, pids["idle"])
		}
		c.start(t, idle)
		c.waitState(t, idle, runtime.ContainerState_CONTAINER_RUNNING, 5*time.Second)
		waitLog(t, filepath.Join(p.logDir, "idle.log"), "idle started", 5*time.Second)
	})
	t.Run("orphan exited and killed", func(t *testing.T) {
		st := c.waitState(t, orphan, runtime.ContainerState_CONTAINER_EXITED, 5*time.Second)
		if st.Reason != "Error" || !strings.Contains(st.Message, "monitor") {
			t.Errorf("orphan's reason %q message %q, want Error and a message about its monitor", st.Reason, st.Message)
		}
		// Reported exited, so it must not run on unseen, unlogged.
		deadline := time.Now().Add(5 * time.Second)
		for alive(pids["orphan"]) {
			if time.Now().After(deadline) {
				t.Fatalf("orphan (pid %d) still running while reported EXITED", pids["orphan"])
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("pod ready", func(t *testing.T) {
		r, err := c.rt.ListPodSandbox(ctx(t), &runtime.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Items) != 1 || r.Items[0].Id != p.id || r.Items[0].State != runtime.PodSandboxState_SANDBOX_READY {
			t.Errorf("pods after restart: %v, want %s READY", r.Items, p.id)
		}
	})
	t.Run("exec into ticker", func(t *testing.T) {
		r, err := c.rt.ExecSync(ctx(t), &runtime.ExecSyncRequest{ContainerId: ticker, Cmd: []string{"sh", "-c", "echo exec-ok; exit 3"}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Stdout) != "exec-ok\n" || r.ExitCode != 3 {
			t.Errorf("exec: stdout %q exit %d, want \"exec-ok\\n\" and 3", r.Stdout, r.ExitCode)
		}
	})
	t.Run("ticker's log has every line", func(t *testing.T) {
		if _, err := c.rt.StopContainer(ctx(t), &runtime.StopContainerRequest{ContainerId: ticker, Timeout: 1}); err != nil {
			t.Fatal(err)
		}
		lines, err := logLines(tickerLog)
		if err != nil {
			t.Fatal(err)
		}
		duringDown := 0
		for i, l := range lines {
			if want := fmt.Sprintf("tick %d", i+1); string(l.content) != want || l.stream != "stdout" {
				t.Fatalf("line %d is %s %q, want stdout %q", i+1, l.stream, l.content, want)
			}
			if l.at.After(downAt) && l.at.Before(upAt) {
				duringDown++
			}
		}
		if duringDown < 10 {
			t.Errorf("%d lines logged while the daemon was down (%v), want many", duringDown, upAt.Sub(downAt))
		}
		t.Logf("%d lines, %d while the daemon was down", len(lines), duringDown)
	})

	ipam := filepath.Join(c.s.dir, "cni-ipam", c.s.net)
	if ips := leasedIPs(t, ipam); len(ips) != 1 {
		t.Errorf("IPAM holds %v for one pod", ips)
	}
	if _, err := c.rt.StopPodSandbox(ctx(t), &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("stop pod: %v", err)
	}
	if _, err := c.rt.RemovePodSandbox(ctx(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatalf("remove pod: %v", err)
	}
	ctrs, err := c.rt.ListContainers(ctx(t), &runtime.ListContainersRequest{})
	if err != nil || len(ctrs.Containers) != 0 {
		t.Errorf("containers after the pod's removal: %v (%v)", ctrs.GetContainers(), err)
	}
	if ips := leasedIPs(t, ipam); len(ips) != 0 {
		t.Errorf("IPs still leased after the pod's removal: %v", ips)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("container %s (pid %d) alive after the pod's removal", name, pid)
		}
	}
}

// leasedIPs lists the addresses host-local IPAM holds in dir (one file per
// address, plus its own bookkeeping files).
func leasedIPs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if ip := strings.Count(e.Name(), "."); ip == 3 && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			out = append(out, e.Name())
		}
	}
	return out
}

// linesOf returns a log's whole lines as "<stream> <content>".
func linesOf(t *testing.T, path string) []string {
	t.Helper()
	lines, err := logLines(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lines {
		out = append(out, l.stream+" "+string(l.content))
	}
	return out
}

// waitLog waits until the log holds a line with content want.
func waitLog(t *testing.T, path, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if lines, err := logLines(path); err == nil {
			for _, l := range lines {
				if string(l.content) == want {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("no line %q in %s after %v:\n%s", want, path, timeout, tailBytes(b, 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tailBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
