package server

import (
	"context"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
)

// ReopenContainerLog asks the monitor to reopen the log after the kubelet
// renamed it for rotation. Lines written meanwhile wait in the pipe.
func (s *Server) ReopenContainerLog(ctx context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	rec, _, err := s.ctrs.resolve(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	if rec.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, errdefs.FailedPrecondition("container %s is not running", rec.ID)
	}
	if _, err := monitor.Call(ctx, rec.Bundle, monitor.Request{Op: monitor.OpReopenLog}); err != nil {
		if errors.Is(err, monitor.ErrGone) {
			// Exited just now, its exit not yet recorded here.
			return nil, errdefs.FailedPrecondition("container %s is not running", rec.ID)
		}
		return nil, fmt.Errorf("reopen log of %s: %w", rec.ID, err)
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
