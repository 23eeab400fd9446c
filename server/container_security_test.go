package server

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/spec"
)

func TestSecurityInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		caps    []string
		wantErr error
	}{
		{name: "config default is the spec default", caps: config.DefaultCapabilities()},
		{name: "smaller set", caps: []string{"CAP_KILL"}},
		{name: "unknown name", caps: []string{"CAP_FLY"}, wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Security.DefaultCapabilities = tc.caps
			var in spec.Input
			err := (&Server{cfg: cfg}).securityInput(&in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(in.DefaultCapabilities, tc.caps) {
				t.Fatalf("caps %v, err %v", in.DefaultCapabilities, err)
			}
		})
	}
	if !slices.Equal(config.DefaultCapabilities(), spec.DefaultCapabilities()) {
		t.Fatalf("config's default capabilities %v differ from the spec's %v", config.DefaultCapabilities(), spec.DefaultCapabilities())
	}
}

// The kubelet enables SupplementalGroupsPolicy only when Status says so,
// and critest skips its specs otherwise; verbose info names what the node
// enforces.
func TestStatusSecurityFeatures(t *testing.T) {
	s := &Server{cfg: config.Default(), cni: cni.New(t.TempDir(), []string{"/opt/cni/bin"})}
	resp, err := s.Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Fatal("SupplementalGroupsPolicy not claimed")
	}
	// critest keys its UserNamespaces specs on this; this kernel has both
	// user namespaces and idmapped mounts.
	if h := resp.GetRuntimeHandlers(); len(h) != 1 || !h[0].GetFeatures().GetUserNamespaces() {
		t.Fatalf("user namespaces not claimed: %v", h)
	}
	var info map[string]string
	if err := json.Unmarshal([]byte(resp.Info["security"]), &info); err != nil || info["seccomp"] != "enforced" ||
		info["apparmor"] == "" || info["lsms"] == "" || !strings.HasPrefix(info["userNamespaces"], "supported") {
		t.Fatalf("security info %q: %v", resp.Info["security"], err)
	}
	if !hostLSMs().AppArmor && !strings.HasPrefix(info["apparmor"], "not on this node") {
		t.Fatalf("apparmor info %q on a node without AppArmor", info["apparmor"])
	}
}

// A pod asking for a user namespace the CRI does not allow, or without
// the one mapping each the kubelet sends, is refused before anything is
// made.
func TestRunPodSandboxRefusesUserNS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mode    runtime.NamespaceMode
		wantErr error
	}{
		{"POD without mappings", runtime.NamespaceMode_POD, errdefs.ErrInvalidArgument},
		{"CONTAINER: invalid", runtime.NamespaceMode_CONTAINER, errdefs.ErrInvalidArgument},
		{"TARGET: invalid", runtime.NamespaceMode_TARGET, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: config.Default()} // no pod manager: reaching it would panic
			_, err := s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
				Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
				Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: tc.mode}}}}}})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}
