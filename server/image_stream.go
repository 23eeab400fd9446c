package server

import (
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamImages is ListImages in batches, for nodes with many images.
func (s *Server) StreamImages(r *runtime.StreamImagesRequest, ss grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	imgs := s.listImages(r.GetFilter())
	for i := 0; i < len(imgs); i += streamBatch {
		if err := ss.Send(&runtime.StreamImagesResponse{Images: imgs[i:min(i+streamBatch, len(imgs))]}); err != nil {
			return err
		}
	}
	return nil
}
