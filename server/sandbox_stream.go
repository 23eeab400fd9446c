package server

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamBatch bounds one streamed message, so a node with thousands of
// pods never hits the gRPC message limit.
const streamBatch = 500

// StreamPodSandboxes sends the same pods as ListPodSandbox, in batches.
func (s *Server) StreamPodSandboxes(r *runtime.StreamPodSandboxesRequest, ss grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	items := s.listPods(r.GetFilter())
	for len(items) > 0 {
		n := min(len(items), streamBatch)
		if err := ss.Send(&runtime.StreamPodSandboxesResponse{PodSandboxes: items[:n]}); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}
