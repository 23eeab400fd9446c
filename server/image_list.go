package server

import (
	"context"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/imagesvc"
)

// ListImages lists images, or the one the filter names.
func (s *Server) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	return &runtime.ListImagesResponse{Images: s.listImages(r.GetFilter())}, nil
}

func (s *Server) listImages(f *runtime.ImageFilter) []*runtime.Image {
	if ref := f.GetImage().GetImage(); ref != "" {
		img, err := s.images.Resolve(ref)
		if err != nil {
			return nil
		}
		return []*runtime.Image{toCRIImage(img)}
	}
	var out []*runtime.Image
	for _, img := range s.images.List() {
		out = append(out, toCRIImage(img))
	}
	return out
}

func toCRIImage(img *imagesvc.Image) *runtime.Image {
	ci := &runtime.Image{Id: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests,
		Size: img.Size, Pinned: img.Pinned, Spec: &runtime.ImageSpec{Image: img.ID}}
	// USER is "name", "uid", "name:group" or "uid:gid"; the kubelet wants
	// the uid when numeric (for runAsNonRoot) and the name otherwise.
	user, _, _ := strings.Cut(img.Config.User, ":")
	if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
		ci.Uid = &runtime.Int64Value{Value: uid}
	} else {
		ci.Username = user
	}
	return ci
}
