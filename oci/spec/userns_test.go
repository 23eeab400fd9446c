package spec

import (
	"errors"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

func TestCheckPodUserNS(t *testing.T) {
	one := func(c, h, l uint32) []*runtime.IDMapping {
		return []*runtime.IDMapping{{ContainerId: c, HostId: h, Length: l}}
	}
	pod := func(u *runtime.UserNamespace, mod ...func(*runtime.NamespaceOption)) *runtime.PodSandboxConfig {
		o := &runtime.NamespaceOption{UsernsOptions: u}
		for _, m := range mod {
			m(o)
		}
		return &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: o}}}
	}
	for _, tc := range []struct {
		name    string
		cfg     *runtime.PodSandboxConfig
		wantErr error
	}{
		{name: "none", cfg: &runtime.PodSandboxConfig{}},
		{name: "NODE", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE})},
		{name: "POD with the kubelet's mapping", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: one(0, 65536, 65536), Gids: one(0, 65536, 65536)})},
		{name: "POD with two mappings", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: append(one(0, 1000, 100), one(100, 2000, 100)...), Gids: one(0, 1000, 100)}), wantErr: errdefs.ErrInvalidArgument},
		{name: "POD without container id 0", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: one(1, 1000, 100000), Gids: one(1, 1000, 100000)}), wantErr: errdefs.ErrInvalidArgument},
		{name: "POD without gids", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: one(0, 1000, 100000)}), wantErr: errdefs.ErrInvalidArgument},
		{name: "POD mapping the host's root", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: one(0, 0, 65536), Gids: one(0, 0, 65536)}), wantErr: errdefs.ErrInvalidArgument},
		{name: "POD overflowing", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: one(0, 4294967290, 65536), Gids: one(0, 65536, 65536)}), wantErr: errdefs.ErrInvalidArgument},
		{name: "POD with host network", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: one(0, 65536, 65536), Gids: one(0, 65536, 65536)}, func(o *runtime.NamespaceOption) { o.Network = runtime.NamespaceMode_NODE }),
			wantErr: errdefs.ErrInvalidArgument},
		{name: "CONTAINER", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}), wantErr: errdefs.ErrInvalidArgument},
		{name: "TARGET", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}), wantErr: errdefs.ErrInvalidArgument},
		{name: "NODE with mappings", cfg: pod(&runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: one(0, 1000, 10)}),
			wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPodUserNS(tc.cfg)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("want %v, got %v", tc.wantErr, err)
			}
		})
	}
}
