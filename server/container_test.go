package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/monitor/monitortest"
	"github.com/cri-server/cri-server/store"
)

// The test binary doubles as the monitor, running containers as plain
// processes until the real executor is linked.

type env struct {
	s      *Server
	cfg    *config.Config
	pods   *fakePods
	images *fakeImages
	rt     *fakeRuntime
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	e := &env{cfg: cfg,
		pods:   &fakePods{logDir: filepath.Join(dir, "logs"), pods: map[string]*podInfo{}},
		images: &fakeImages{dir: filepath.Join(dir, "rootfs"), mounted: map[string]string{}},
		rt:     &fakeRuntime{deleted: map[string]bool{}, updated: map[string]*specs.LinuxResources{}},
	}
	e.pods.add("pod1")
	e.pods.add("pod2")
	e.start(t)
	t.Cleanup(func() {
		// Leak check: every container removed, no monitor left.
		ctx := context.Background()
		for _, c := range e.s.listContainers(nil) {
			if _, err := e.s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
				t.Errorf("remove container %s: %v", c.Id, err)
			}
		}
		e.s.Close()
		ents, _ := os.ReadDir(filepath.Join(cfg.State, "containers"))
		if len(ents) != 0 {
			t.Errorf("%d container bundles left behind", len(ents))
		}
		if len(e.images.mounted) != 0 {
			t.Errorf("rootfs left mounted: %v", e.images.mounted)
		}
	})
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	// As New does, with the peers wired before the containers are
	// reloaded: reconcile and orphan cleanup need them.
	db, err := store.Open(filepath.Join(e.cfg.Root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: e.cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), db: db,
		podDeps: e.pods, imageDeps: e.images, runtime: e.rt, monitorExe: os.Args[0]}
	if err := s.initContainers(db); err != nil {
		db.Close()
		t.Fatal(err)
	}
	e.s = s
}

func (e *env) create(t *testing.T, pod, name string, labels map[string]string, cmd ...string) string {
	t.Helper()
	resp, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{
		PodSandboxId: pod,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: "busybox"},
			Command: cmd, Labels: labels, LogPath: name + ".log"},
	})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.ContainerId
}

func (e *env) status(t *testing.T, id string) *runtime.ContainerStatus {
	t.Helper()
	r, err := e.s.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("status %s: %v", id, err)
	}
	return r.Status
}

func (e *env) waitExited(t *testing.T, id string) *runtime.ContainerStatus {
	t.Helper()
	for i := 0; i < 500; i++ {
		if st := e.status(t, id); st.State == runtime.ContainerState_CONTAINER_EXITED {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("container %s never exited", id)
	return nil
}

func (e *env) startC(t *testing.T, id string) {
	t.Helper()
	if _, err := e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sub := e.s.events.subscribe()
	defer e.s.events.unsubscribe(sub)

	id := e.create(t, "pod1", "web", nil, "/bin/sh", "-c", "echo started; exec sleep 100")
	st := e.status(t, id)
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.CreatedAt == 0 || st.StartedAt != 0 ||
		st.ImageRef == "" || st.Image.Image != "busybox" || !strings.HasSuffix(st.LogPath, "pod1/web.log") {
		t.Fatalf("created: %+v", st)
	}
	if _, err := e.s.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("reopen of a created container: %v", err)
	}
	e.startC(t, id)
	if st := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Fatalf("started: %+v", st)
	}
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second start: %v", err)
	}
	if _, err := e.s.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtime.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 32 << 20}}); err != nil {
		t.Fatal(err)
	}
	if r := e.rt.updated[id]; r == nil || *r.CPU.Shares != 256 || e.status(t, id).Resources.Linux.MemoryLimitInBytes != 32<<20 {
		t.Fatalf("update not applied or not reported: %+v", r)
	}
	// The start returns once the init is released, before the user's
	// process runs (as with oci): a stop must not beat its first line.
	for i := 0; i < 500; i++ {
		if data, _ := os.ReadFile(st.LogPath); strings.Contains(string(data), " stdout F started\n") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Prefix ids work like crictl's.
	if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id[:12], Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	st = e.status(t, id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 128+15 || st.Reason != reasonError || st.FinishedAt < st.StartedAt {
		t.Fatalf("stopped: %+v", st)
	}
	for i := 0; i < 2; i++ { // idempotent
		if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
			t.Fatalf("stop again: %v", err)
		}
	}
	data, _ := os.ReadFile(st.LogPath)
	if !strings.Contains(string(data), " stdout F started\n") {
		t.Fatalf("log: %q", data)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	if _, err := e.s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("status after remove: %v", err)
	}
	if !e.rt.deleted[id] {
		t.Fatal("executor state not deleted")
	}
	if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("stop of removed: %v", err)
	}
	var got []runtime.ContainerEventType
	for len(got) < 4 {
		select {
		case ev := <-sub.ch:
			if ev.ContainerId != id || ev.PodSandboxStatus.GetId() != "pod1" || len(ev.ContainersStatuses) != 1 {
				t.Fatalf("event %+v", ev)
			}
			got = append(got, ev.ContainerEventType)
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", got)
		}
	}
	want := []runtime.ContainerEventType{runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerEventType_CONTAINER_DELETED_EVENT}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v want %v", got, want)
		}
	}
}

func TestContainerExits(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name       string
		cmd        []string
		oom        bool
		wantCode   int32
		wantReason string
	}{
		{name: "completed", cmd: []string{"/bin/sh", "-c", "echo hi"}, wantReason: reasonCompleted},
		{name: "error", cmd: []string{"/bin/sh", "-c", "exit 3"}, wantCode: 3, wantReason: reasonError},
		{name: "oom killed", cmd: []string{"/bin/sh", "-c", "kill -9 $$"}, oom: true, wantCode: 137, wantReason: reasonOOMKilled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := e.create(t, "pod1", strings.ReplaceAll(tc.name, " ", "-"), nil, tc.cmd...)
			if tc.oom {
				dir := filepath.Join(e.s.ociStateDir(), id)
				os.MkdirAll(dir, 0o700)
				os.WriteFile(filepath.Join(dir, monitortest.OOMFile), []byte("1"), 0o600)
			}
			e.startC(t, id)
			st := e.waitExited(t, id)
			if st.ExitCode != tc.wantCode || st.Reason != tc.wantReason {
				t.Fatalf("exit %d %q, want %d %q", st.ExitCode, st.Reason, tc.wantCode, tc.wantReason)
			}
			os.RemoveAll(filepath.Join(e.s.ociStateDir(), id))
		})
	}
}

func TestStartFailureIsContainerCannotRun(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pod1", "bad", nil, "/does/not/exist")
	if _, err := e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: id}); err == nil {
		t.Fatal("start of a missing binary succeeded")
	}
	st := e.waitExited(t, id)
	if st.Reason != reasonCannotRun || !strings.Contains(st.Message, "/does/not/exist") {
		t.Fatalf("status %+v", st)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name    string
		timeout int64
		max     time.Duration
	}{
		{name: "ignores SIGTERM, killed at timeout", timeout: 1, max: 5 * time.Second},
		{name: "timeout 0 kills at once", timeout: 0, max: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := e.create(t, "pod1", strings.ReplaceAll(tc.name, " ", "-"), nil, "/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
			e.startC(t, id)
			time.Sleep(50 * time.Millisecond) // let the trap be set
			if _, err := e.s.StopContainer(context.Background(), &runtime.StopContainerRequest{ContainerId: id, Timeout: tc.timeout}); err != nil {
				t.Fatal(err)
			}
			if st := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
				t.Fatalf("after stop: %+v", st)
			}
		})
	}
}

func TestNameCollision(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pod1", "web", nil, "/bin/true")
	_, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: "pod1",
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "web"}, Image: &runtime.ImageSpec{Image: "busybox"}}})
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), id) {
		t.Fatalf("collision: %v", err)
	}
	// Other attempt, other pod: fine.
	e.create(t, "pod2", "web", nil, "/bin/true")
	for _, tc := range []struct {
		name string
		req  *runtime.CreateContainerRequest
		want error
	}{
		{name: "unknown pod", req: &runtime.CreateContainerRequest{PodSandboxId: "nope",
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "x"}, Image: &runtime.ImageSpec{Image: "busybox"}}}, want: errdefs.ErrNotFound},
		{name: "unknown image", req: &runtime.CreateContainerRequest{PodSandboxId: "pod1",
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "x"}, Image: &runtime.ImageSpec{Image: "missing"}}}, want: errdefs.ErrNotFound},
		{name: "no name", req: &runtime.CreateContainerRequest{PodSandboxId: "pod1",
			Config: &runtime.ContainerConfig{Image: &runtime.ImageSpec{Image: "busybox"}}}, want: errdefs.ErrInvalidArgument},
		{name: "log path escapes", req: &runtime.CreateContainerRequest{PodSandboxId: "pod1",
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "x"}, Image: &runtime.ImageSpec{Image: "busybox"}, LogPath: "../../x.log"}}, want: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.s.CreateContainer(context.Background(), tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
			// A failed create releases the name and leaves nothing.
			if h := e.s.ctrs.names.Holder("x_pod-pod1_ns_uid-pod1_0"); h != "" {
				t.Fatalf("name still held by %s", h)
			}
		})
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t)
	a := e.create(t, "pod1", "a", map[string]string{"app": "web", "tier": "front"}, "/bin/sh", "-c", "exec sleep 100")
	b := e.create(t, "pod1", "b", map[string]string{"app": "web"}, "/bin/true")
	c := e.create(t, "pod2", "c", map[string]string{"app": "db"}, "/bin/true")
	e.startC(t, a)
	e.startC(t, c)
	e.waitExited(t, c)
	for _, tc := range []struct {
		name   string
		filter *runtime.ContainerFilter
		want   []string
	}{
		{name: "none", want: []string{a, b, c}},
		{name: "id", filter: &runtime.ContainerFilter{Id: b}, want: []string{b}},
		{name: "id prefix", filter: &runtime.ContainerFilter{Id: c[:10]}, want: []string{c}},
		{name: "running", filter: &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}, want: []string{a}},
		{name: "created", filter: &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_CREATED}}, want: []string{b}},
		{name: "exited", filter: &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}}, want: []string{c}},
		{name: "pod", filter: &runtime.ContainerFilter{PodSandboxId: "pod1"}, want: []string{a, b}},
		{name: "label", filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "web"}}, want: []string{a, b}},
		{name: "labels all match", filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "web", "tier": "front"}}, want: []string{a}},
		{name: "label and pod", filter: &runtime.ContainerFilter{PodSandboxId: "pod2", LabelSelector: map[string]string{"app": "web"}}},
		{name: "unknown id", filter: &runtime.ContainerFilter{Id: "ffff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := e.s.ListContainers(context.Background(), &runtime.ListContainersRequest{Filter: tc.filter})
			var got []string
			for _, c := range resp.Containers {
				got = append(got, c.Id)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %d containers, want %d", len(got), len(tc.want))
			}
		})
	}
}

// The daemon restarts: a running container is still running, one that
// exited while the daemon was down reports its real exit, one whose monitor
// died without a record is EXITED, not running.
func TestRestartReconciles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	run := e.create(t, "pod1", "run", nil, "/bin/sh", "-c", "exec sleep 100")
	gone := e.create(t, "pod1", "gone", nil, "/bin/sh", "-c", "trap 'exit 4' TERM; while :; do sleep 0.05; done")
	lost := e.create(t, "pod1", "lost", nil, "/bin/sh", "-c", "exec sleep 100")
	created := e.create(t, "pod1", "created", nil, "/bin/true")
	for _, id := range []string{run, gone, lost} {
		e.startC(t, id)
	}
	time.Sleep(100 * time.Millisecond) // let the trap be set
	if st := e.status(t, gone); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("gone exited early: %+v", st)
	}
	old := e.s
	old.Close()
	time.Sleep(20 * time.Millisecond)

	// While down: "gone" exits, the monitor of "lost" is killed -9.
	goneRec, _, _ := old.ctrs.get(gone)
	monitor.Call(ctx, goneRec.Bundle, monitor.Request{Op: monitor.OpKill, Signal: int(syscall.SIGTERM)})
	for i := 0; i < 300 && !monitor.HasExit(goneRec.Bundle); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	lostRec, _, _ := old.ctrs.get(lost)
	killMonitor(t, lostRec.Bundle)

	e.start(t)
	for _, tc := range []struct {
		id    string
		state runtime.ContainerState
		code  int32
	}{
		{run, runtime.ContainerState_CONTAINER_RUNNING, 0},
		{gone, runtime.ContainerState_CONTAINER_EXITED, 4},
		{lost, runtime.ContainerState_CONTAINER_EXITED, exitCodeUnknown},
		{created, runtime.ContainerState_CONTAINER_CREATED, 0},
	} {
		st := e.status(t, tc.id)
		if st.State != tc.state || st.ExitCode != tc.code {
			t.Errorf("%s after restart: %s code %d, want %s %d (%s)", st.Metadata.Name, st.State, st.ExitCode, tc.state, tc.code, st.Message)
		}
	}
	// Reported EXITED, so its processes were killed through the executor.
	e.rt.mu.Lock()
	killed := e.rt.deleted[lost]
	e.rt.mu.Unlock()
	if !killed {
		t.Errorf("the lost container was not deleted (killed) through the executor at reload")
	}
	// The reloaded container is still watched and stoppable.
	if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: run, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, run); st.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after stop: %+v", st)
	}
	// The fake executor kills nothing: kill the lost container's process so
	// that the test leaves nothing.
	if p := lostRec.Status.Pid; p > 0 {
		syscall.Kill(-p, syscall.SIGKILL)
	}
}

// A monitor that dies while the daemon runs leaves no exit record: the
// container is reported EXITED with an unknown code, and killed through the
// executor so that the report is true.
func TestLostMonitorWhileRunning(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pod1", "lost", nil, "/bin/sh", "-c", "exec sleep 100")
	e.startC(t, id)
	rec, _, _ := e.s.ctrs.get(id)
	killMonitor(t, rec.Bundle)
	st := e.waitExited(t, id)
	if st.ExitCode != exitCodeUnknown || st.Reason != reasonError || !strings.Contains(st.Message, "monitor lost") {
		t.Errorf("after its monitor died: code %d reason %q message %q, want %d %s \"container monitor lost...\"",
			st.ExitCode, st.Reason, st.Message, exitCodeUnknown, reasonError)
	}
	e.rt.mu.Lock()
	killed := e.rt.deleted[id]
	e.rt.mu.Unlock()
	if !killed {
		t.Errorf("the container of the lost monitor was not deleted (killed) through the executor")
	}
	if p := rec.Status.Pid; p > 0 {
		syscall.Kill(-p, syscall.SIGKILL) // the fake executor kills nothing
	}
}

// killMonitor kills the monitor serving bundle, found through its socket's
// peer credentials.
func killMonitor(t *testing.T, bundle string) {
	t.Helper()
	pid := monitorPid(t, bundle)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEventsSlowSubscriberDoesNotBlock(t *testing.T) {
	h := newEventHub()
	fast, slow := h.subscribe(), h.subscribe()
	const n = eventBuffer * 4
	got := make(chan int)
	go func() {
		count := 0
		for {
			select {
			case <-fast.ch:
				if count++; count == n {
					got <- count
					return
				}
			case <-fast.dropped:
				got <- -count
				return
			}
		}
	}()
	published := make(chan struct{})
	go func() {
		defer close(published)
		// Batches of half a buffer, each published once the fast reader has
		// drained the last: it never falls behind, the slow one always does.
		for i := 0; i < n; i++ {
			if i%(eventBuffer/2) == 0 {
				for len(fast.ch) > 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			h.publish(&runtime.ContainerEventResponse{ContainerId: "c"})
		}
	}()
	select {
	case <-published:
	case <-time.After(20 * time.Second):
		t.Fatal("publish blocked on a slow subscriber")
	}
	if c := <-got; c != n {
		t.Fatalf("fast subscriber got %d of %d events (negative: disconnected)", c, n)
	}
	select {
	case <-slow.dropped:
	default:
		t.Fatal("slow subscriber not disconnected")
	}
	if len(slow.ch) != eventBuffer {
		t.Fatalf("slow subscriber kept %d buffered events", len(slow.ch))
	}
}

func TestPodHooks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.create(t, "pod1", "a", nil, "/bin/sh", "-c", "exec sleep 100")
	b := e.create(t, "pod1", "b", nil, "/bin/true")
	other := e.create(t, "pod2", "c", nil, "/bin/sh", "-c", "exec sleep 100")
	e.startC(t, a)
	e.startC(t, other)
	if err := e.s.StopPodContainers(ctx, "pod1", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b} {
		if st := e.status(t, id); st.State != runtime.ContainerState_CONTAINER_EXITED {
			t.Fatalf("%s after pod stop: %s", st.Metadata.Name, st.State)
		}
	}
	if st := e.status(t, other); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("other pod's container touched: %s", st.State)
	}
	if err := e.s.RemovePodContainers(ctx, "pod2"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.s.ListContainers(ctx, &runtime.ListContainersRequest{}); len(resp.Containers) != 2 {
		t.Fatalf("%d containers left, want pod1's 2", len(resp.Containers))
	}
}
