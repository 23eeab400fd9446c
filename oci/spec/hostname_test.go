package spec

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod's hostname goes into the spec only with a UTS namespace of the
// pod's: on host network the names are the node's, and the executor
// refuses a hostname it could only set on the host.
func TestHostnameOnlyWithUTSNamespace(t *testing.T) {
	tests := []struct {
		name    string
		network runtime.NamespaceMode
		want    string
	}{
		{"pod network: the pod's hostname", runtime.NamespaceMode_POD, "pod1"},
		{"host network: none", runtime.NamespaceMode_NODE, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := base(t)
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Network: tc.network}}}
			s, err := Generate(in)
			if err != nil {
				t.Fatal(err)
			}
			if s.Hostname != tc.want {
				t.Errorf("hostname %q, want %q", s.Hostname, tc.want)
			}
		})
	}
}
