package server

import (
	"context"
	"encoding/json"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Reason the kubelet shows for NetworkReady=false, named like the peers'.
const reasonNetworkNotReady = "NetworkPluginNotReady"

// Status reports RuntimeReady and NetworkReady. The kubelet marks the node
// NotReady while either is false and prints reason and message, so the
// message must say what an operator has to fix.
func (s *Server) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	runtimeReady := &runtime.RuntimeCondition{Type: runtime.RuntimeReady, Status: true}
	networkReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.cni.Status(); err != nil {
		networkReady.Status = false
		networkReady.Reason = reasonNetworkNotReady
		networkReady.Message = "cni config uninitialized: " + err.Error()
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{runtimeReady, networkReady}},
		RuntimeHandlers: []*runtime.RuntimeHandler{{
			Name: "", // the default handler
			Features: &runtime.RuntimeHandlerFeatures{
				// The kubelet refuses pods that rely on a feature the
				// handler does not claim.
				RecursiveReadOnlyMounts: recursiveReadOnlySupported(),
				UserNamespaces:          userNamespacesSupported(),
			},
		}},
		Features: securityFeatures(),
	}
	if r.GetVerbose() {
		cfg, err := json.Marshal(s.cfg)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		podCIDR := s.podCIDR
		s.mu.Unlock()
		sec, _ := json.Marshal(securityInfo())
		resp.Info = map[string]string{
			"config":   string(cfg),
			"podCIDR":  podCIDR,
			"security": string(sec),
		}
	}
	return resp, nil
}
