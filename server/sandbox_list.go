package server

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/sandbox"
)

// ListPodSandbox lists pods matching every filter given: id (a prefix, as
// crictl passes short ids), state, and label selector (all must match).
func (s *Server) ListPodSandbox(ctx context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	return &runtime.ListPodSandboxResponse{Items: s.listPods(r.GetFilter())}, nil
}

func (s *Server) listPods(f *runtime.PodSandboxFilter) []*runtime.PodSandbox {
	var out []*runtime.PodSandbox
	for _, p := range s.pods.List() {
		if !podMatches(p, f) {
			continue
		}
		out = append(out, &runtime.PodSandbox{
			Id: p.ID, Metadata: p.Metadata, State: podState(p), CreatedAt: p.CreatedAt,
			Labels: p.Labels, Annotations: p.Annotations, RuntimeHandler: p.RuntimeHandler,
		})
	}
	return out
}

func podMatches(p *sandbox.Pod, f *runtime.PodSandboxFilter) bool {
	if f == nil {
		return true
	}
	if f.Id != "" && !strings.HasPrefix(p.ID, f.Id) {
		return false
	}
	if f.State != nil && f.State.State != podState(p) {
		return false
	}
	for k, v := range f.LabelSelector {
		if got, ok := p.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
