package server

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/imagesvc"
)

// ImageFsInfo reports the image store and the containers' writable layers.
func (s *Server) ImageFsInfo(ctx context.Context, r *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	now := time.Now().UnixNano()
	usage := func(u imagesvc.Usage) *runtime.FilesystemUsage {
		return &runtime.FilesystemUsage{Timestamp: now, FsId: &runtime.FilesystemIdentifier{Mountpoint: u.Mountpoint},
			UsedBytes: &runtime.UInt64Value{Value: u.Bytes}, InodesUsed: &runtime.UInt64Value{Value: u.Inodes}}
	}
	return &runtime.ImageFsInfoResponse{
		ImageFilesystems:     []*runtime.FilesystemUsage{usage(s.images.ImageFsUsage())},
		ContainerFilesystems: []*runtime.FilesystemUsage{usage(s.images.ContainerFsUsage())},
	}, nil
}
