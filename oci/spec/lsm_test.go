package spec

import (
	"errors"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// What each AppArmor request becomes on a node with and without AppArmor
// (containerd 2.x's mapping).
func TestAppArmorProfile(t *testing.T) {
	prof := func(typ runtime.SecurityProfile_ProfileType, ref string) *runtime.LinuxContainerSecurityContext {
		return &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{ProfileType: typ, LocalhostRef: ref}}
	}
	const def = oci.DefaultAppArmorProfile
	for _, tc := range []struct {
		name            string
		sc              *runtime.LinuxContainerSecurityContext
		with, without   string // profile on a node with / without AppArmor
		errWith, errOut error
	}{
		{name: "nothing asked", sc: nil, with: def},
		{name: "nothing asked, privileged", sc: &runtime.LinuxContainerSecurityContext{Privileged: true}, with: ""},
		{name: "RuntimeDefault", sc: prof(runtime.SecurityProfile_RuntimeDefault, ""), with: def},
		{name: "RuntimeDefault, privileged", sc: &runtime.LinuxContainerSecurityContext{Privileged: true,
			Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}}, with: def},
		{name: "Unconfined", sc: prof(runtime.SecurityProfile_Unconfined, ""), with: ""},
		{name: "Localhost", sc: prof(runtime.SecurityProfile_Localhost, "localhost/k8s-nginx"), with: "k8s-nginx",
			errOut: errdefs.ErrInvalidArgument},
		{name: "Localhost bare name", sc: prof(runtime.SecurityProfile_Localhost, "k8s-nginx"), with: "k8s-nginx",
			errOut: errdefs.ErrInvalidArgument},
		{name: "Localhost without a name", sc: prof(runtime.SecurityProfile_Localhost, ""),
			errWith: errdefs.ErrInvalidArgument, errOut: errdefs.ErrInvalidArgument},
		{name: "deprecated runtime/default", sc: &runtime.LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}, with: def},
		{name: "deprecated unconfined", sc: &runtime.LinuxContainerSecurityContext{ApparmorProfile: "unconfined"}, with: ""},
		{name: "deprecated localhost", sc: &runtime.LinuxContainerSecurityContext{ApparmorProfile: "localhost/p"}, with: "p",
			errOut: errdefs.ErrInvalidArgument},
		{name: "deprecated garbage", sc: &runtime.LinuxContainerSecurityContext{ApparmorProfile: "p"},
			errWith: errdefs.ErrInvalidArgument, errOut: errdefs.ErrInvalidArgument},
		{name: "field wins over the deprecated string", sc: &runtime.LinuxContainerSecurityContext{
			Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, ApparmorProfile: "localhost/p"}, with: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, node := range []struct {
				enabled bool
				want    string
				wantErr error
			}{{true, tc.with, tc.errWith}, {false, "", tc.errOut}} {
				got, err := appArmorProfile(tc.sc, node.enabled)
				if node.wantErr != nil {
					if !errors.Is(err, node.wantErr) {
						t.Errorf("apparmor=%v: want %v, got %q %v", node.enabled, node.wantErr, got, err)
					}
					continue
				}
				if err != nil || got != node.want {
					t.Errorf("apparmor=%v: got %q %v, want %q", node.enabled, got, err, node.want)
				}
			}
		})
	}
}
