package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// Hand-written fakes of the pod, image and executor seams.

type fakePods struct {
	logDir string
	mu     sync.Mutex
	pods   map[string]*podInfo
}

func (f *fakePods) Pod(ctx context.Context, id string) (*podInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[id]
	if !ok {
		return nil, errdefs.NotFound("pod %s", id)
	}
	return p, nil
}

func (f *fakePods) PodStatus(ctx context.Context, id string) *runtime.PodSandboxStatus {
	return &runtime.PodSandboxStatus{Id: id, State: runtime.PodSandboxState_SANDBOX_READY}
}

func (f *fakePods) add(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[id] = &podInfo{ID: id, Ready: true, LogDirectory: filepath.Join(f.logDir, id),
		Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "pod-" + id, Namespace: "ns", Uid: "uid-" + id}}}
}

type fakeImages struct {
	dir     string
	mu      sync.Mutex
	mounted map[string]string
}

func (f *fakeImages) Resolve(ctx context.Context, ref string) (*resolvedImage, error) {
	if ref == "missing" {
		return nil, errdefs.NotFound("image %s", ref)
	}
	return &resolvedImage{ID: "sha256:" + strings.Repeat("a", 64), Ref: "docker.io/library/busybox@sha256:" + strings.Repeat("b", 64),
		Config: imagespec.ImageConfig{Cmd: []string{"/bin/true"}, Env: []string{"PATH=/usr/bin:/bin"}}}, nil
}

func (f *fakeImages) Mount(ctx context.Context, imageID, id string) (string, error) {
	p := filepath.Join(f.dir, id)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.mounted[id] = p
	f.mu.Unlock()
	return p, nil
}

func (f *fakeImages) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.mounted[id]; ok {
		os.RemoveAll(p)
		delete(f.mounted, id)
	}
	return nil
}

type fakeRuntime struct {
	mu      sync.Mutex
	deleted map[string]bool
	updated map[string]*specs.LinuxResources
}

func (f *fakeRuntime) Delete(ctx context.Context, id string, force bool) error {
	f.mu.Lock()
	f.deleted[id] = true
	f.mu.Unlock()
	return nil
}

func (f *fakeRuntime) Exec(ctx context.Context, id string, p *specs.Process, stdio oci.IO) (*oci.Process, error) {
	return nil, errdefs.Unimplemented("fake runtime: no exec")
}

func (f *fakeRuntime) Update(ctx context.Context, id string, r *specs.LinuxResources) error {
	f.mu.Lock()
	f.updated[id] = r
	f.mu.Unlock()
	return nil
}
