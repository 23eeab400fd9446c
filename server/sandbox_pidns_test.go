package server

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A shared-PID pod whose init died can start no process in its namespace:
// it is reported not ready (status and list), so the kubelet recreates it,
// as it does when a pause container dies. It still stops and removes.
func TestPodNotReadyWhenInitDies(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	cfg := podConfig("initdies")
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	id := e.run(cfg)
	other := e.run(podConfig("bystander"))
	st, info := e.status(id)
	if st.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("new pod is %v", st.State)
	}
	pid := int(info["pid"].(float64))
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if st, _ = e.status(id); st.State == runtime.PodSandboxState_SANDBOX_NOTREADY {
			break
		}
		if i == 500 {
			t.Fatalf("pod still %v after its init %d got SIGTERM", st.State, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ready := &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}
	l, err := e.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{Filter: ready})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].Id != other {
		t.Errorf("ready pods %v, want only the bystander %s", l.Items, other)
	}
	e.stopRemove(id)
	e.stopRemove(other)
}
