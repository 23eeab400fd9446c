package e2e

import (
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDaemonKill9DuringCreate kills the daemon in the middle of
// RunPodSandbox (of a pod sharing its PID namespace: one more process to
// lose) and of CreateContainer, at several moments. After the restart
// what the daemon reports works and can be removed, and what it half made
// is cleaned up: no monitor is left, and the leak check at the end finds
// nothing.
func TestDaemonKill9DuringCreate(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	c.pull(t, busybox)
	shared := func(cfg *runtime.PodSandboxConfig) {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	}
	tests := []struct {
		name  string
		delay time.Duration
		// pod: kill during RunPodSandbox; else during CreateContainer in
		// a pod made before.
		pod bool
	}{
		{name: "run pod 0ms", pod: true},
		{name: "run pod 1ms", delay: time.Millisecond, pod: true},
		{name: "run pod 2ms", delay: 2 * time.Millisecond, pod: true},
		{name: "run pod 4ms", delay: 4 * time.Millisecond, pod: true},
		{name: "run pod 8ms", delay: 8 * time.Millisecond, pod: true},
		{name: "run pod 30ms", delay: 30 * time.Millisecond, pod: true},
		{name: "run pod 100ms", delay: 100 * time.Millisecond, pod: true},
		{name: "create 0ms"},
		{name: "create 2ms", delay: 2 * time.Millisecond},
		{name: "create 5ms", delay: 5 * time.Millisecond},
		{name: "create 10ms", delay: 10 * time.Millisecond},
		{name: "create 20ms", delay: 20 * time.Millisecond},
		{name: "create 40ms", delay: 40 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.podConfig("half")
			shared(cfg)
			var podID string
			if !tt.pod {
				podID = c.runPod(t, "half", shared).id
				cfg = nil
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tt.pod {
					r, err := c.rt.RunPodSandbox(ctx(t), &runtime.RunPodSandboxRequest{Config: cfg})
					if err != nil {
						return
					}
					podID = r.PodSandboxId
				}
				c.rt.CreateContainer(ctx(t), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: &runtime.ContainerConfig{
					Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: busybox},
					Command: []string{"sleep", "3600"}, LogPath: "c.log",
				}})
			}()
			time.Sleep(tt.delay)
			c.s.kill9(t)
			<-done
			c.s.start(t)
			c.connect(t)
			c.checkAllWork(t)
			c.removeAllPods(t)
			daemon := c.s.cmd.Process.Pid
			for _, p := range ourProcesses(owner{dirs: []string{c.s.dir}}, c.s.bin) {
				if p.pid != daemon {
					t.Errorf("left after every pod was removed: process %d (%s)", p.pid, p.cmd)
				}
			}
		})
	}
}

// checkAllWork starts every created container and checks that every
// container the daemon reports is running.
func (c *cri) checkAllWork(t *testing.T) {
	t.Helper()
	pods, err := c.rt.ListPodSandbox(ctx(t), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctrs, err := c.rt.ListContainers(ctx(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restart: %d pods, %d containers", len(pods.Items), len(ctrs.Containers))
	for _, ct := range ctrs.Containers {
		if ct.State == runtime.ContainerState_CONTAINER_CREATED {
			c.start(t, ct.Id)
		}
		st := c.waitState(t, ct.Id, runtime.ContainerState_CONTAINER_RUNNING, 5*time.Second)
		if _, pid := c.status(t, ct.Id); !alive(pid) {
			t.Errorf("container %s reported %s, its pid %d is not alive", ct.Id, st.State, pid)
		}
	}
}
