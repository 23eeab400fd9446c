package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/version"
)

// apiVersion is the CRI version this server speaks; the kubelet checks
// RuntimeApiVersion == "v1".
const apiVersion = "v1"

// Version reports the runtime's name and version. The kubelet sends
// version "v1" (or nothing); the answer does not depend on it.
func (s *Server) Version(ctx context.Context, r *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       version.RuntimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: apiVersion,
	}, nil
}
