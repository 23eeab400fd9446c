package server

import (
	"context"
	"encoding/json"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/sandbox"
)

// PodSandboxStatus reports one pod; verbose adds an "info" JSON with the
// pinned namespaces and the CNI result.
func (s *Server) PodSandboxStatus(ctx context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	p, err := s.pods.Get(r.PodSandboxId)
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{Status: podStatus(p)}
	if r.Verbose {
		info := map[string]any{
			"pid":          p.InitPID,
			"netns":        p.NetNS,
			"ipcns":        p.IPCNS,
			"utsns":        p.UTSNS,
			"pidns":        p.PIDNS,
			"hostname":     p.Hostname,
			"cgroupParent": p.CgroupParent,
			"netPending":   p.NetPending,
		}
		if len(p.CNIResult) > 0 {
			info["cniResult"] = json.RawMessage(p.CNIResult)
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

func podState(p *sandbox.Pod) runtime.PodSandboxState {
	if p.State == sandbox.StateReady && !p.InitGone() {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

func podStatus(p *sandbox.Pod) *runtime.PodSandboxStatus {
	st := &runtime.PodSandboxStatus{
		Id: p.ID, Metadata: p.Metadata, State: podState(p), CreatedAt: p.CreatedAt,
		Labels: p.Labels, Annotations: p.Annotations, RuntimeHandler: p.RuntimeHandler,
		Network: &runtime.PodSandboxNetworkStatus{},
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{
			Options: p.NamespaceOptions,
		}},
	}
	if st.Linux.Namespaces.Options == nil {
		st.Linux.Namespaces.Options = &runtime.NamespaceOption{}
	}
	// A stopped pod has released its IP: reporting it would mislead.
	if p.State == sandbox.StateReady && len(p.IPs) > 0 {
		st.Network.Ip = p.IPs[0]
		for _, ip := range p.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	return st
}
