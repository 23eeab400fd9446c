package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// RunPodSandbox creates and starts a pod: its namespaces, files, cgroup
// and network. The work and its undo on failure live in sandbox/.
func (s *Server) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	if r.GetConfig() == nil {
		return nil, errdefs.InvalidArgument("pod sandbox config is required")
	}
	if err := checkPodSecurity(r.Config); err != nil {
		return nil, err
	}
	p, err := s.pods.Run(ctx, r.Config, r.RuntimeHandler)
	if err != nil {
		return nil, err
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: p.ID}, nil
}
