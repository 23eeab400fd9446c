package server

import (
	"context"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci"
)

// The seams between the container RPCs and their peers. The lead satisfies
// them at merge with sandbox (podLookup), imagesvc (imageService) and
// oci.Runtime (containerRuntime); tests use small fakes.

// podInfo is what a container needs from its pod.
type podInfo struct {
	ID     string
	Config *runtime.PodSandboxConfig
	Ready  bool
	// Pinned namespace paths; "" for a namespace the pod does not hold.
	NetNS, IPCNS, UTSNS, PIDNS                   string
	UserNS                                       string // the pod's user namespace, "" for the host's
	HostnamePath, HostsPath, ResolvPath, ShmPath string
	CgroupParent                                 string
	LogDirectory                                 string
}

type podLookup interface {
	// Pod returns the pod by full id; errdefs.ErrNotFound when absent.
	Pod(ctx context.Context, id string) (*podInfo, error)
	// PodStatus is attached to container events for the kubelet's evented
	// PLEG; nil when the pod is gone.
	PodStatus(ctx context.Context, id string) *runtime.PodSandboxStatus
}

// resolvedImage is an image as a container uses it.
type resolvedImage struct {
	ID     string // sha256:...
	Ref    string // repo digest when known, else ID: ContainerStatus.image_ref
	Config imagespec.ImageConfig
}

type imageService interface {
	Resolve(ctx context.Context, ref string) (*resolvedImage, error)
	// Mount prepares a fresh writable rootfs for containerID and returns
	// its path; Remove undoes it and is idempotent.
	Mount(ctx context.Context, imageID, containerID string) (string, error)
	Remove(ctx context.Context, containerID string) error
}

// containerRuntime is the part of oci.Runtime the daemon calls itself; the
// monitor does create, start, kill and wait.
type containerRuntime interface {
	Delete(ctx context.Context, id string, force bool) error
	Update(ctx context.Context, id string, r *specs.LinuxResources) error
	// Exec starts p in the running container id; the daemon becomes its
	// parent and must Wait for it.
	Exec(ctx context.Context, id string, p *specs.Process, stdio oci.IO) (*oci.Process, error)
}
