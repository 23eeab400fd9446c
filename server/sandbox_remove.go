package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemovePodSandbox removes the pod and all it holds. Idempotent.
func (s *Server) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if err := s.pods.Remove(ctx, r.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}
