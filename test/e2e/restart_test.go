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

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDaemonKill9 is issue 6's promise: kill -9 of cri-server loses no
// container, no exit code and no log line. A pod runs a container that logs
// a numbered line every 10 ms (ticker), one that exits 7 while the daemon is
// down (exiter), one created but not started (idle), and one whose monitor
// is killed while the daemon is down (orphan). The daemon is killed, and
// restarted on the same root and state once the exiter is gone; then killed
// and restarted once more, which must change nothing.
func TestDaemonKill9(t *testing.T) {
	requireE2E(t)
	k := setupKill9(t)
	c, p := k.c, k.p
	before := k.snapshot(t)

	c.s.kill9(t)
	k.downAt = time.Now()
	k.whileDown(t)
	k.upAt = time.Now()
	c.s.start(t)
	c.connect(t)

	t.Run("same truth after restart", func(t *testing.T) { k.checkUnchanged(t, before) })
	t.Run("exiter exited 7 while the daemon was down", k.checkExiter)
	t.Run("orphan exited and killed", k.checkOrphan)
	t.Run("idle starts", func(t *testing.T) {
		c.start(t, k.ids["idle"])
		c.waitState(t, k.ids["idle"], runtime.ContainerState_CONTAINER_RUNNING, 5*time.Second)
		waitLog(t, filepath.Join(p.logDir, "idle.log"), "idle started", 5*time.Second)
	})
	t.Run("exec into ticker", func(t *testing.T) {
		r, err := c.rt.ExecSync(ctx(t), &runtime.ExecSyncRequest{ContainerId: k.ids["ticker"], Cmd: []string{"sh", "-c", "echo exec-ok; exit 3"}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Stdout) != "exec-ok\n" || r.ExitCode != 3 {
			t.Errorf("exec: stdout %q exit %d, want \"exec-ok\\n\" and 3", r.Stdout, r.ExitCode)
		}
	})
	t.Run("stats and resource update of ticker", func(t *testing.T) { k.checkStatsAndUpdate(t) })
	// The kubelet rotates a log through a restarted daemon too.
	rotated := k.tickerLog + ".1"
	t.Run("rotate ticker's log", func(t *testing.T) {
		if err := os.Rename(k.tickerLog, rotated); err != nil {
			t.Fatal(err)
		}
		if _, err := c.rt.ReopenContainerLog(ctx(t), &runtime.ReopenContainerLogRequest{ContainerId: k.ids["ticker"]}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("second kill changes nothing", func(t *testing.T) {
		again := k.snapshot(t)
		c.s.kill9(t)
		c.s.start(t)
		c.connect(t)
		k.checkUnchanged(t, again)
	})
	t.Run("graceful restart changes nothing", func(t *testing.T) {
		again := k.snapshot(t)
		c.s.stop(t)
		c.s.start(t)
		c.connect(t)
		k.checkUnchanged(t, again)
	})
	t.Run("shared PID namespace pod runs a new container", func(t *testing.T) {
		id := c.create(t, k.shared, "late", []string{"sh", "-c", "echo late; exec sleep 3600"}, nil)
		c.start(t, id)
		waitLog(t, filepath.Join(k.shared.logDir, "late.log"), "late", 5*time.Second)
		// Same PID namespace as the container started before the kills.
		r, err := c.rt.ExecSync(ctx(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "ps -o args | grep -c '^sleep 3601'"}, Timeout: 10})
		if err != nil || string(r.Stdout) != "1\n" {
			t.Errorf("the early container's process seen from the late one: %q, %v (stderr %q)", r.GetStdout(), err, r.GetStderr())
		}
	})
	t.Run("ticker's log has every line", func(t *testing.T) {
		if _, err := c.rt.StopContainer(ctx(t), &runtime.StopContainerRequest{ContainerId: k.ids["ticker"], Timeout: 1}); err != nil {
			t.Fatal(err)
		}
		k.checkTickerLog(t, rotated, k.tickerLog)
	})
	k.removePods(t)
}

// kill9 is TestDaemonKill9's pod and what it saw before the kill.
type kill9 struct {
	c            *cri
	p            *pod
	shared       *pod              // a second pod, sharing its PID namespace
	ids          map[string]string // container name -> id
	pids         map[string]int    // container name -> init pid
	monitors     []int
	tickerLog    string
	downAt, upAt time.Time
}

func setupKill9(t *testing.T) *kill9 {
	t.Helper()
	c := privateServer(t)
	c.pull(t, busybox)
	k := &kill9{c: c, p: c.runPod(t, "kill9"), ids: map[string]string{}, pids: map[string]int{}}
	for _, ct := range []struct {
		name  string
		argv  []string
		start bool
	}{
		{"ticker", []string{"sh", "-c", `i=0; while :; do i=$((i+1)); echo "tick $i"; usleep 10000; done`}, true},
		// 100 lines at once, then the exit 3 s later: the daemon is long dead by then.
		{"exiter", []string{"sh", "-c", `for i in $(seq 1 100); do echo "before $i"; done; sleep 3; echo "while down"; echo "on stderr" >&2; exit 7`}, true},
		{"idle", []string{"sh", "-c", `echo "idle started"; exec sleep 3600`}, false},
		// Its monitor is killed while the daemon is down (CRI-O issue 6295:
		// such a container was reported running forever).
		{"orphan", []string{"sleep", "3600"}, true},
	} {
		k.ids[ct.name] = c.create(t, k.p, ct.name, ct.argv, nil)
		if ct.start {
			c.start(t, k.ids[ct.name])
		}
	}
	// The pod's PID namespace is held by a small init of the daemon's,
	// which must survive it too.
	k.shared = c.runPod(t, "shared", func(cfg *runtime.PodSandboxConfig) {
		cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD},
		}
	})
	k.ids["early"] = c.create(t, k.shared, "early", []string{"sleep", "3601"}, nil)
	c.start(t, k.ids["early"])
	k.tickerLog = filepath.Join(k.p.logDir, "ticker.log")
	waitLog(t, k.tickerLog, "tick 20", 10*time.Second)
	for name, id := range k.ids {
		st, pid := c.status(t, id)
		if pid <= 0 {
			t.Fatalf("%s: no pid in the verbose status", name)
		}
		k.pids[name] = pid
		if name == "exiter" && st.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("exiter is %s before the kill; it must exit while the daemon is down", st.State)
		}
	}
	k.monitors = c.s.monitors(c.s.cmd.Process.Pid)
	if len(k.monitors) != len(k.ids) {
		t.Fatalf("%d monitor processes of %s for %d containers", len(k.monitors), c.s.bin, len(k.ids))
	}
	return k
}

// rpcView is what the kubelet sees of the pod: the answers a restart must
// not change (but for what happened meanwhile).
type rpcView struct {
	pods map[string]*runtime.PodSandboxStatus // by id
	ctrs map[string]*runtime.ContainerStatus  // by name
	list []string                             // ListContainers ids, sorted
}

func (k *kill9) snapshot(t *testing.T) rpcView {
	t.Helper()
	v := rpcView{pods: map[string]*runtime.PodSandboxStatus{}, ctrs: map[string]*runtime.ContainerStatus{}}
	for _, p := range []*pod{k.p, k.shared} {
		ps, err := k.c.rt.PodSandboxStatus(ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: p.id})
		if err != nil {
			t.Fatal(err)
		}
		v.pods[p.id] = ps.Status
	}
	for name, id := range k.ids {
		r, err := k.c.rt.ContainerStatus(ctx(t), &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		v.ctrs[name] = r.Status
	}
	l, err := k.c.rt.ListContainers(ctx(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range l.Containers {
		v.list = append(v.list, c.Id)
	}
	slices.Sort(v.list)
	return v
}

// checkUnchanged compares the view after a restart with the one before:
// the pod (state, IP) and every container that had nothing to change
// (running ones keep running with the same pid) must read the same.
func (k *kill9) checkUnchanged(t *testing.T, before rpcView) {
	t.Helper()
	after := k.snapshot(t)
	for id, was := range before.pods {
		now := after.pods[id]
		if !proto.Equal(was, now) {
			t.Errorf("pod status after restart:\n%v\nbefore:\n%v", now, was)
		}
		if now.State != runtime.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s is %s after restart", now.GetMetadata().GetName(), now.State)
		}
	}
	if !slices.Equal(before.list, after.list) {
		t.Errorf("ListContainers after restart %v, before %v", after.list, before.list)
	}
	for name, was := range before.ctrs {
		if was.State != runtime.ContainerState_CONTAINER_EXITED && (name == "exiter" || name == "orphan") {
			continue // meant to change while the daemon was down
		}
		if now := after.ctrs[name]; !proto.Equal(was, now) {
			t.Errorf("%s after restart:\n%v\nbefore:\n%v", name, now, was)
		}
		if _, pid := k.c.status(t, k.ids[name]); pid != k.pids[name] {
			t.Errorf("%s has pid %d after restart, %d before", name, pid, k.pids[name])
		}
	}
}

// whileDown checks that the kill took the daemon alone, kills the orphan's
// monitor, and waits for the exiter's exit.
func (k *kill9) whileDown(t *testing.T) {
	t.Helper()
	for _, pid := range k.monitors {
		if !alive(pid) {
			t.Errorf("monitor %d died with the daemon", pid)
		}
	}
	for name, pid := range k.pids {
		if !alive(pid) {
			t.Errorf("container %s (pid %d) died with the daemon", name, pid)
		}
	}
	m := k.c.s.monitorOf(k.ids["orphan"])
	if m == 0 {
		t.Fatalf("no monitor process for container %s", k.ids["orphan"])
	}
	if err := syscall.Kill(m, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 the orphan's monitor: %v", err)
	}
	waitGone(t, "exiter", k.pids["exiter"], 10*time.Second)
	time.Sleep(300 * time.Millisecond) // ticker lines while the daemon is down
}

func (k *kill9) checkExiter(t *testing.T) {
	st := k.c.waitState(t, k.ids["exiter"], runtime.ContainerState_CONTAINER_EXITED, 5*time.Second)
	fin := time.Unix(0, st.FinishedAt)
	if st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("exit code %d reason %q, want 7 and Error", st.ExitCode, st.Reason)
	}
	if fin.Before(k.downAt) || fin.After(k.upAt) {
		t.Errorf("finished at %s, want within the daemon's down time %s .. %s", fin, k.downAt, k.upAt)
	}
	var want []string
	for i := 1; i <= 100; i++ {
		want = append(want, fmt.Sprintf("stdout before %d", i))
	}
	want = append(want, "stdout while down", "stderr on stderr")
	// The two streams are two pipes: their relative order is lost.
	got := linesOf(t, filepath.Join(k.p.logDir, "exiter.log"))
	byStream := func(a, b string) int { return strings.Compare(a[:6], b[:6]) }
	slices.SortStableFunc(got, byStream)
	slices.SortStableFunc(want, byStream)
	if !slices.Equal(got, want) {
		t.Errorf("exiter's log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func (k *kill9) checkOrphan(t *testing.T) {
	st := k.c.waitState(t, k.ids["orphan"], runtime.ContainerState_CONTAINER_EXITED, 5*time.Second)
	if st.Reason != "Error" || !strings.Contains(st.Message, "monitor") {
		t.Errorf("orphan's reason %q message %q, want Error and a message about its monitor", st.Reason, st.Message)
	}
	// Reported exited, so it must not run on unseen and unlogged.
	waitGone(t, "orphan", k.pids["orphan"], 5*time.Second)
}

// checkStatsAndUpdate asks what the kubelet asks of a running container
// every few seconds, and resizes it: all of it from state the restarted
// daemon rebuilt.
func (k *kill9) checkStatsAndUpdate(t *testing.T) {
	c, id := k.c, k.ids["ticker"]
	r, err := c.rt.ContainerStats(ctx(t), &runtime.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stats.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || r.Stats.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("ticker's stats after restart lack cpu or memory: %v", r.Stats)
	}
	ps, err := c.rt.PodSandboxStats(ctx(t), &runtime.PodSandboxStatsRequest{PodSandboxId: k.p.id})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ps.Stats.GetLinux().GetContainers()); n == 0 {
		t.Errorf("pod stats after restart list no container: %v", ps.Stats)
	}
	const limit = 256 << 20
	if _, err := c.rt.UpdateContainerResources(ctx(t), &runtime.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: limit},
	}); err != nil {
		t.Fatal(err)
	}
	st, _ := c.status(t, id)
	if got := st.GetResources().GetLinux().GetMemoryLimitInBytes(); got != limit {
		t.Errorf("memory limit after update %d, want %d", got, limit)
	}
	ex, err := c.rt.ExecSync(ctx(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}, Timeout: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(ex.Stdout)); got != fmt.Sprint(limit) {
		t.Errorf("the container's memory cgroup limit reads %q, want %d (stderr %q)", got, limit, ex.Stderr)
	}
}

// checkTickerLog reads the ticker's log files in order: every line from
// the first, no gap, some written while the daemon was down.
func (k *kill9) checkTickerLog(t *testing.T, files ...string) {
	lines, err := logLines(files...)
	if err != nil {
		t.Fatal(err)
	}
	duringDown := 0
	for i, l := range lines {
		if want := fmt.Sprintf("tick %d", i+1); string(l.content) != want || l.stream != "stdout" {
			t.Fatalf("line %d is %s %q, want stdout %q", i+1, l.stream, l.content, want)
		}
		if l.at.After(k.downAt) && l.at.Before(k.upAt) {
			duringDown++
		}
	}
	if duringDown < 10 {
		t.Errorf("%d lines logged while the daemon was down (%v), want many", duringDown, k.upAt.Sub(k.downAt))
	}
	t.Logf("%d lines, %d while the daemon was down", len(lines), duringDown)
}

// removePods stops and removes the pods through CRI: every container goes,
// the IPs are released, no process is left (the rest of the leak check runs
// at clean-up).
func (k *kill9) removePods(t *testing.T) {
	t.Helper()
	c := k.c
	ipam := filepath.Join(c.s.dir, "cni-ipam", c.s.net)
	if ips := leasedIPs(t, ipam); len(ips) != 2 {
		t.Errorf("IPAM holds %v for two pods", ips)
	}
	for _, p := range []*pod{k.p, k.shared} {
		if _, err := c.rt.StopPodSandbox(ctx(t), &runtime.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Fatalf("stop pod: %v", err)
		}
		if _, err := c.rt.RemovePodSandbox(ctx(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Fatalf("remove pod: %v", err)
		}
	}
	ctrs, err := c.rt.ListContainers(ctx(t), &runtime.ListContainersRequest{})
	if err != nil || len(ctrs.Containers) != 0 {
		t.Errorf("containers after the pods' removal: %v (%v)", ctrs.GetContainers(), err)
	}
	if ips := leasedIPs(t, ipam); len(ips) != 0 {
		t.Errorf("IPs still leased after the pods' removal: %v", ips)
	}
	for name, pid := range k.pids {
		if alive(pid) {
			t.Errorf("container %s (pid %d) alive after the pod's removal", name, pid)
		}
	}
}

// waitGone waits until pid is no longer a live process.
func waitGone(t *testing.T, name string, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still running after %v", name, pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
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
