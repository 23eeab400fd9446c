package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// RemoveImage removes by id, tag or digest; an absent image is success.
func (s *Server) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("image is required")
	}
	if err := s.images.RemoveImage(ref); err != nil {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}
