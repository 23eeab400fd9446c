package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopPodSandbox stops the pod's containers and releases its network.
// Idempotent, and an unknown id is success, as the kubelet expects.
func (s *Server) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if err := s.pods.Stop(ctx, r.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}
