package server

import (
	"context"
	"net/netip"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// RuntimeConfig tells the kubelet which cgroup driver to name cgroup parents
// for; a kubelet configured otherwise refuses to start, which is the point.
func (s *Server) RuntimeConfig(ctx context.Context, r *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.cfg.CgroupDriver == "systemd" {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig records the node's pod CIDR. The kubelet sends it once
// the node object has one; CNI plugins that need it read it from the
// conflist, so it is kept for Status (verbose) and for a later CNI
// capability argument.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	// The kubelet sends dual-stack CIDRs comma-separated.
	for _, c := range strings.Split(cidr, ",") {
		if c == "" {
			continue
		}
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return nil, errdefs.InvalidArgument("pod CIDR %q: %v", c, err)
		}
	}
	s.mu.Lock()
	changed := s.podCIDR != cidr
	s.podCIDR = cidr
	s.mu.Unlock()
	if changed {
		s.log.Info("pod CIDR updated", "podCIDR", cidr)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
