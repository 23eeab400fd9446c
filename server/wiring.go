package server

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/imagesvc"
	"github.com/cri-server/cri-server/sandbox"
)

// podAdapter answers the container RPCs' questions about a pod from the
// sandbox manager.
type podAdapter struct{ s *Server }

func (a podAdapter) Pod(ctx context.Context, id string) (*podInfo, error) {
	p, err := a.s.pods.Get(id)
	if err != nil {
		return nil, err
	}
	return &podInfo{
		ID: p.ID,
		Config: &runtime.PodSandboxConfig{
			Metadata: p.Metadata, Hostname: p.Hostname, LogDirectory: p.LogDirectory,
			Labels: p.Labels, Annotations: p.Annotations,
			Linux: &runtime.LinuxPodSandboxConfig{
				CgroupParent:    p.CgroupParent,
				SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: p.NamespaceOptions},
			},
		},
		Ready: p.State == sandbox.StateReady,
		NetNS: p.NetNS, IPCNS: p.IPCNS, UTSNS: p.UTSNS, PIDNS: p.PIDNS, UserNS: p.UserNS,
		HostnamePath: p.HostnamePath, HostsPath: p.HostsPath, ResolvPath: p.ResolvPath, ShmPath: p.ShmPath,
		CgroupParent: p.CgroupParent, LogDirectory: p.LogDirectory,
	}, nil
}

func (a podAdapter) PodStatus(ctx context.Context, id string) *runtime.PodSandboxStatus {
	resp, err := a.s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return nil
	}
	return resp.GetStatus()
}

// imageAdapter gives the container RPCs images and root filesystems.
type imageAdapter struct{ svc *imagesvc.Service }

func (a imageAdapter) Resolve(ctx context.Context, ref string) (*resolvedImage, error) {
	img, err := a.svc.Resolve(ref)
	if err != nil {
		return nil, err
	}
	r := &resolvedImage{ID: img.ID, Ref: img.ID, Config: img.Config}
	if len(img.RepoDigests) > 0 {
		r.Ref = img.RepoDigests[0]
	}
	return r, nil
}

func (a imageAdapter) Mount(ctx context.Context, imageID, containerID string) (string, error) {
	return a.svc.Mount(imageID, containerID)
}

func (a imageAdapter) Remove(ctx context.Context, containerID string) error {
	return a.svc.Remove(containerID)
}

// containerStopper lets StopPodSandbox and RemovePodSandbox end the pod's
// containers first.
type containerStopper struct{ s *Server }

// podStopGrace is how long a pod's containers get when the pod is stopped
// with containers still running. None, as in containerd: the kubelet has
// already stopped each container with its own grace period before it stops
// the pod, so what is left is killed at once.
const podStopGrace time.Duration = 0

func (c containerStopper) StopPodContainers(ctx context.Context, podID string) error {
	return c.s.StopPodContainers(ctx, podID, podStopGrace)
}

func (c containerStopper) RemovePodContainers(ctx context.Context, podID string) error {
	return c.s.RemovePodContainers(ctx, podID)
}
