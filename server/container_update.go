package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/spec"
)

// UpdateContainerResources applies new limits to a created or running
// container and records them for ContainerStatus.
func (s *Server) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	rec, _, err := s.ctrs.resolve(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	if rec.Status.State == runtime.ContainerState_CONTAINER_EXITED {
		return nil, errdefs.FailedPrecondition("container %s has exited", rec.ID)
	}
	lr := r.GetLinux()
	if lr == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	res, err := spec.Resources(lr)
	if err != nil {
		return nil, err
	}
	if s.runtime == nil {
		return nil, errdefs.FailedPrecondition("update resources: executor is not wired")
	}
	if err := s.runtime.Update(ctx, rec.ID, res); err != nil {
		return nil, fmt.Errorf("update container %s: %w", rec.ID, err)
	}
	if _, err := s.ctrs.update(rec.ID, func(st *containerStatus) error {
		st.Resources = lr
		return nil
	}); err != nil {
		return nil, err
	}
	s.log.Info("container resources updated", "container", rec.ID)
	return &runtime.UpdateContainerResourcesResponse{}, nil
}
