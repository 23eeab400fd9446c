package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/imagesvc"
)

// PullImage pulls and unpacks an image; the kubelet's credentials go to the
// image's own registry only, never to mirrors.
func (s *Server) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	if r.GetImage().GetImage() == "" {
		return nil, errdefs.InvalidArgument("image is required")
	}
	var auth imagesvc.Auth
	if a := r.GetAuth(); a != nil {
		auth = imagesvc.Auth{Username: a.Username, Password: a.Password, Auth: a.Auth,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	}
	img, err := s.images.Pull(ctx, r.Image.Image, auth)
	if err != nil {
		return nil, err
	}
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}
