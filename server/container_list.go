package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamChunk is how many containers one StreamContainers message carries.
const streamChunk = 500

// ListContainers answers from memory with every CRI filter: id (or id
// prefix), state, pod id (or prefix), and labels (all must match).
func (s *Server) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	return &runtime.ListContainersResponse{Containers: s.listContainers(r.GetFilter())}, nil
}

// StreamContainers is ListContainers in chunks, for the kubelet's
// CRIListStreaming at density.
func (s *Server) StreamContainers(r *runtime.StreamContainersRequest, stream grpc.ServerStreamingServer[runtime.StreamContainersResponse]) error {
	all := s.listContainers(r.GetFilter())
	for len(all) > 0 {
		n := min(streamChunk, len(all))
		if err := stream.Send(&runtime.StreamContainersResponse{Containers: all[:n]}); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

func (s *Server) listContainers(f *runtime.ContainerFilter) []*runtime.Container {
	out := []*runtime.Container{}
	for _, rec := range s.ctrs.list() {
		if matchContainer(rec, f) {
			out = append(out, toCRIContainer(rec))
		}
	}
	return out
}

func matchContainer(rec *containerRecord, f *runtime.ContainerFilter) bool {
	if f == nil {
		return true
	}
	if f.Id != "" && !strings.HasPrefix(rec.ID, f.Id) {
		return false
	}
	if f.State != nil && f.State.State != rec.Status.State {
		return false
	}
	if f.PodSandboxId != "" && !strings.HasPrefix(rec.PodID, f.PodSandboxId) {
		return false
	}
	for k, v := range f.LabelSelector {
		if got, ok := rec.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
