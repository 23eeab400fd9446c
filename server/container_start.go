package server

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
)

// StartContainer releases a created container's init through its monitor.
// A start that fails leaves the container EXITED with ContainerCannotRun,
// which is what the kubelet shows the user.
func (s *Server) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	rec, _, err := s.ctrs.resolve(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	if rec.Status.State != runtime.ContainerState_CONTAINER_CREATED {
		return nil, errdefs.FailedPrecondition("container %s is %s, not CREATED", rec.ID, stateName(rec.Status.State))
	}
	rep, err := monitor.Call(ctx, rec.Bundle, monitor.Request{Op: monitor.OpStart})
	if err != nil {
		s.ctrs.update(rec.ID, func(st *containerStatus) error {
			st.Reason, st.Message = reasonCannotRun, err.Error()
			return nil
		})
		monitor.Call(context.Background(), rec.Bundle, monitor.Request{Op: monitor.OpKill, Signal: 9, All: true})
		return nil, fmt.Errorf("start container %s: %w", rec.ID, err)
	}
	rec, err = s.ctrs.update(rec.ID, func(st *containerStatus) error {
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			// It ran and already exited: keep the exit, record the start.
			if st.StartedAt.IsZero() {
				st.StartedAt = time.Now()
			}
			return nil
		}
		st.State, st.StartedAt, st.Pid = runtime.ContainerState_CONTAINER_RUNNING, time.Now(), rep.Pid
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("container started", "container", rec.ID, "pod", rec.PodID, "pid", rep.Pid)
	s.emit(rec, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtime.StartContainerResponse{}, nil
}
