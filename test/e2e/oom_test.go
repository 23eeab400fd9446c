package e2e

import (
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestOOMKilledReal runs a container with a 32 MiB memory limit that takes
// 100 MiB (dd reads /dev/zero into a 100 MiB buffer, every page touched) as
// its own init: the kernel's OOM killer SIGKILLs it, and the status says so
// precisely, also when the kill happened while the daemon was down. Its
// pod and a sibling container live on.
func TestOOMKilledReal(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	c.pull(t, busybox)
	tests := []struct {
		name string
		// daemonDown: the daemon is killed -9 before the allocation and
		// restarted after the OOM kill.
		daemonDown bool
	}{
		{name: "daemon up"},
		{name: "daemon killed meanwhile", daemonDown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := c.runPod(t, "oom")
			sibling := c.create(t, p, "sibling", []string{"sleep", "3600"}, nil)
			c.start(t, sibling)
			_, siblingPid := c.status(t, sibling)

			const limit = 32 << 20
			argv := []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"}
			if tt.daemonDown {
				argv = []string{"sh", "-c", "sleep 1; exec dd if=/dev/zero of=/dev/null bs=100M count=1"}
			}
			hog := c.create(t, p, "hog", argv, func(cfg *runtime.ContainerConfig) {
				cfg.Linux.Resources.MemoryLimitInBytes = limit
			})
			c.start(t, hog)
			if tt.daemonDown {
				_, pid := c.status(t, hog)
				c.s.kill9(t)
				waitGone(t, "hog", pid, 20*time.Second)
				c.s.start(t)
				c.connect(t)
			}
			st := c.waitState(t, hog, runtime.ContainerState_CONTAINER_EXITED, 30*time.Second)
			checkOOMStatus(t, st, limit)

			ps, err := c.rt.PodSandboxStatus(ctx(t), &runtime.PodSandboxStatusRequest{PodSandboxId: p.id})
			if err != nil {
				t.Fatal(err)
			}
			if ps.Status.State != runtime.PodSandboxState_SANDBOX_READY {
				t.Errorf("pod is %s after the OOM kill", ps.Status.State)
			}
			sst, pid := c.status(t, sibling)
			if sst.State != runtime.ContainerState_CONTAINER_RUNNING || pid != siblingPid || !alive(pid) {
				t.Errorf("sibling is %s with pid %d (alive %v), want RUNNING with pid %d", sst.State, pid, alive(pid), siblingPid)
			}
			r, err := c.rt.ExecSync(ctx(t), &runtime.ExecSyncRequest{ContainerId: sibling, Cmd: []string{"echo", "alive"}, Timeout: 10})
			if err != nil || string(r.GetStdout()) != "alive\n" {
				t.Errorf("exec into the sibling: %q, %v", r.GetStdout(), err)
			}
			c.removePod(t, p.id)
		})
	}
}

func checkOOMStatus(t *testing.T, st *runtime.ContainerStatus, limit int64) {
	t.Helper()
	if st.ExitCode != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", st.ExitCode)
	}
	if st.Reason != "OOMKilled" {
		t.Errorf("reason %q (message %q), want OOMKilled", st.Reason, st.Message)
	}
	if st.StartedAt == 0 || st.FinishedAt < st.StartedAt || st.CreatedAt > st.StartedAt {
		t.Errorf("created %d, started %d, finished %d: want 0 < created <= started <= finished", st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	if got := st.GetResources().GetLinux().GetMemoryLimitInBytes(); got != limit {
		t.Errorf("memory limit in the status %d, want %d", got, limit)
	}
	if st.GetMetadata().GetName() != "hog" || st.GetImageRef() == "" {
		t.Errorf("metadata %v image ref %q", st.GetMetadata(), st.GetImageRef())
	}
}
