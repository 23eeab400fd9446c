package server

import (
	"context"
	"errors"
	"fmt"
	"os"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// RemoveContainer kills a running container, then removes its executor
// state, rootfs, bundle and record. Removing an unknown id succeeds.
func (s *Server) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	rec, c, err := s.ctrs.resolve(r.GetContainerId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtime.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stop(ctx, rec, c, 0); err != nil {
		return nil, fmt.Errorf("kill container before removal: %w", err)
	}
	if err := s.removeContainer(ctx, rec); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// removeContainer deletes everything of an exited container. Each step is
// idempotent, so a removal interrupted by a crash is finished by the next.
func (s *Server) removeContainer(ctx context.Context, rec *containerRecord) error {
	if s.runtime != nil {
		if err := s.runtime.Delete(ctx, rec.ID, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("delete container %s: %w", rec.ID, err)
		}
	}
	if s.imageDeps != nil {
		if err := s.imageDeps.Remove(ctx, rec.ID); err != nil {
			return fmt.Errorf("remove rootfs of %s: %w", rec.ID, err)
		}
	}
	if err := os.RemoveAll(rec.Bundle); err != nil {
		return fmt.Errorf("remove bundle of %s: %w", rec.ID, err)
	}
	if err := s.ctrs.remove(rec.ID); err != nil {
		return err
	}
	s.log.Info("container removed", "container", rec.ID, "pod", rec.PodID)
	s.emit(rec, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}
