package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// A container with PID mode TARGET (kubectl debug) joins the running target
// container's PID namespace; anything else that could not work is refused
// before a monitor is spawned.
func TestPIDNamespaceOfNewContainer(t *testing.T) {
	e := newEnv(t)
	running := e.create(t, "pod1", "target", nil, "sleep", "60")
	e.startC(t, running)
	exited := e.create(t, "pod1", "gone", nil, "true")
	e.startC(t, exited)
	e.waitExited(t, exited)
	other := e.create(t, "pod2", "elsewhere", nil, "sleep", "60")
	e.startC(t, other)
	rec, _, err := e.s.ctrs.get(running)
	if err != nil {
		t.Fatal(err)
	}
	pod1, _ := e.pods.Pod(context.Background(), "pod1")
	pod1.PIDNS = "/run/pod1/pidns"
	tests := []struct {
		name    string
		opt     *runtime.NamespaceOption
		want    string
		wantErr error
	}{
		{"pod", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}, "/run/pod1/pidns", nil},
		{"container", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}, "", nil},
		{"node", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}, "", nil},
		{"target", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: running}, fmt.Sprintf("/proc/%d/ns/pid", rec.Status.Pid), nil},
		{"target by prefix", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: running[:12]}, fmt.Sprintf("/proc/%d/ns/pid", rec.Status.Pid), nil},
		{"target without id", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}, "", errdefs.ErrInvalidArgument},
		{"target unknown", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "nope"}, "", errdefs.ErrNotFound},
		{"target exited", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: exited}, "", errdefs.ErrFailedPrecondition},
		{"target in another pod", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: other}, "", errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &runtime.ContainerConfig{Linux: &runtime.LinuxContainerConfig{
				SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: tc.opt}}}
			got, err := e.s.pidNamespace(cfg, pod1)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %q, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, id := range []string{running, other} {
		e.s.StopContainer(context.Background(), &runtime.StopContainerRequest{ContainerId: id})
	}
}
