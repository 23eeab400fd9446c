package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// ImageStatus answers with no image (not an error) when it is absent: that
// is how the kubelet learns it must pull.
func (s *Server) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("image is required")
	}
	img, err := s.images.Resolve(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: toCRIImage(img)}
	if r.Verbose {
		info, err := json.Marshal(map[string]any{"imageSpec": img.Spec, "chainIDs": img.ChainIDs})
		if err != nil {
			return nil, fmt.Errorf("encode image info: %w", err)
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}
