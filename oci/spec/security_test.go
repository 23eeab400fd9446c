package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

func withSC(in *Input, sc *runtime.LinuxContainerSecurityContext) {
	in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc}
}

func privilegedPod(in *Input) {
	in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
}

func writeProfile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func hasRule(p *specs.LinuxSeccomp, name string, act specs.LinuxSeccompAction) bool {
	for _, r := range p.Syscalls {
		if slices.Contains(r.Names, name) && r.Action == act {
			return true
		}
	}
	return false
}

func TestSecurityContext(t *testing.T) {
	blockChmod := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`
	for _, tc := range []struct {
		name    string
		mod     func(t *testing.T, in *Input)
		check   func(*testing.T, *specs.Spec)
		wantErr error
	}{
		{name: "defaults: 14 caps, no nnp, default masks, unconfined", check: func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			if len(c.Bounding) != 14 || !slices.Equal(c.Bounding, c.Effective) || !slices.Equal(c.Bounding, c.Permitted) ||
				len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("caps %+v", c)
			}
			if s.Process.NoNewPrivileges || s.Linux.Seccomp != nil {
				t.Errorf("nnp %v seccomp %v", s.Process.NoNewPrivileges, s.Linux.Seccomp != nil)
			}
			if !slices.Equal(s.Linux.MaskedPaths, MaskedPaths()) || !slices.Equal(s.Linux.ReadonlyPaths, ReadonlyPaths()) {
				t.Errorf("masked %v ro %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		{name: "configured default set", mod: func(t *testing.T, in *Input) { in.DefaultCapabilities = []string{"CAP_KILL"} },
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_KILL"}) {
					t.Errorf("caps %v", s.Process.Capabilities.Bounding)
				}
			}},
		{name: "configured empty set", mod: func(t *testing.T, in *Input) { in.DefaultCapabilities = []string{} },
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Process.Capabilities.Bounding) != 0 {
					t.Errorf("caps %v", s.Process.Capabilities.Bounding)
				}
			}},
		{name: "add ALL then drop one", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"all"}, DropCapabilities: []string{"SYS_ADMIN"}}})
		}, check: func(t *testing.T, s *specs.Spec) {
			b := s.Process.Capabilities.Bounding
			if len(b) != len(AllCapabilities())-1 || slices.Contains(b, "CAP_SYS_ADMIN") || !slices.Contains(b, "CAP_NET_ADMIN") {
				t.Errorf("caps %v", b)
			}
		}},
		{name: "drop ALL then add one", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"net_raw"}, DropCapabilities: []string{"ALL"}}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_RAW"}) {
				t.Errorf("caps %v", s.Process.Capabilities.Bounding)
			}
		}},
		{name: "add and drop the same: dropped", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"CAP_NET_ADMIN"}}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_ADMIN") {
				t.Errorf("caps %v", s.Process.Capabilities.Bounding)
			}
		}},
		{name: "unknown capability", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"NET_ADMINN"}}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "non-root user: bounding only", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}})
		}, check: func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			if len(c.Bounding) != 14 || len(c.Effective) != 0 || len(c.Permitted) != 0 {
				t.Errorf("caps %+v", c)
			}
		}},
		{name: "no_new_privs", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{NoNewPrivs: true})
		}, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.NoNewPrivileges {
				t.Error("no_new_privs not set")
			}
		}},
		{name: "kubelet's masked and readonly paths replace the defaults", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{"/bin/ls"}, ReadonlyPaths: []string{"/tmp"}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Linux.MaskedPaths, []string{"/bin/ls"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/tmp"}) {
				t.Errorf("masked %v ro %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		{name: "user namespace: the pod's, joined by path, with its mappings", mod: func(t *testing.T, in *Input) {
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
					Uids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}, Gids: []*runtime.IDMapping{{HostId: 200000, Length: 65536}}}}}}
			in.UserNS = "/run/pod/userns"
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/pod/userns"}) {
				t.Errorf("namespaces %v lack the pod's user namespace", s.Linux.Namespaces)
			}
			want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			if !slices.Equal(s.Linux.UIDMappings, want) || s.Linux.GIDMappings[0].HostID != 200000 {
				t.Errorf("mappings %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
			}
		}},
		{name: "user namespace without a pinned one", mod: func(t *testing.T, in *Input) {
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
					Uids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}, Gids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}}}}}
		}, wantErr: errdefs.ErrFailedPrecondition},
		{name: "user namespace mode CONTAINER", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
				UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "host userns keeps the defaults", mod: func(t *testing.T, in *Input) {
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.MaskedPaths) == 0 {
				t.Error("masked paths dropped without a user namespace")
			}
		}},
		{name: "readonly rootfs", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{ReadonlyRootfs: true})
		}, check: func(t *testing.T, s *specs.Spec) {
			if !s.Root.Readonly || !slices.Contains(mountAt(s, "/etc/hosts").Options, "ro") {
				t.Errorf("root %+v hosts %+v", s.Root, mountAt(s, "/etc/hosts"))
			}
		}},
		{name: "seccomp RuntimeDefault", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{}})
		}, check: func(t *testing.T, s *specs.Spec) {
			p := s.Linux.Seccomp
			if p == nil || p.DefaultAction != specs.ActErrno || !hasRule(p, "read", specs.ActAllow) || hasRule(p, "keyctl", specs.ActAllow) {
				t.Fatalf("profile %+v", p)
			}
			if hasRule(p, "unshare", specs.ActAllow) {
				t.Error("unshare allowed without CAP_SYS_ADMIN")
			}
		}},
		{name: "seccomp RuntimeDefault opens unshare to SYS_ADMIN", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{},
				Capabilities: &runtime.Capability{AddCapabilities: []string{"SYS_ADMIN"}}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if !hasRule(s.Linux.Seccomp, "unshare", specs.ActAllow) {
				t.Error("unshare not allowed with CAP_SYS_ADMIN")
			}
		}},
		{name: "seccomp legacy runtime/default", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"})
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp == nil {
				t.Error("no profile")
			}
		}},
		{name: "seccomp legacy bad name", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "strict"})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp Unconfined", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil {
				t.Error("unconfined got a profile")
			}
		}},
		{name: "seccomp Localhost", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: writeProfile(t, blockChmod)}})
		}, check: func(t *testing.T, s *specs.Spec) {
			p := s.Linux.Seccomp
			if p == nil || p.DefaultAction != specs.ActAllow || !hasRule(p, "fchmodat", specs.ActErrno) {
				t.Errorf("profile %+v", p)
			}
		}},
		{name: "seccomp legacy localhost/", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + writeProfile(t, blockChmod)})
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp == nil || !hasRule(s.Linux.Seccomp, "chmod", specs.ActErrno) {
				t.Error("legacy localhost profile not loaded")
			}
		}},
		{name: "seccomp Localhost missing file", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: filepath.Join(t.TempDir(), "nope.json")}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp Localhost relative path", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "profile.json"}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp Localhost bad json", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: writeProfile(t, `{"defaultAction": `)}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp Localhost without defaultAction", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: writeProfile(t, `{}`)}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp Localhost bad action", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: writeProfile(t, `{"defaultAction":"SCMP_ACT_MAYBE"}`)}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp Localhost is a directory", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: t.TempDir()}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "privileged", mod: func(t *testing.T, in *Input) {
			privilegedPod(in)
			withSC(in, &runtime.LinuxContainerSecurityContext{Privileged: true, Seccomp: &runtime.SecurityProfile{},
				Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"}}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Bounding, AllCapabilities()) || s.Linux.Seccomp != nil {
				t.Errorf("caps %v seccomp %v", s.Process.Capabilities.Bounding, s.Linux.Seccomp != nil)
			}
			if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
				t.Errorf("masked %v ro %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
				if o := mountAt(s, d).Options; slices.Contains(o, "ro") || !slices.Contains(o, "rw") {
					t.Errorf("%s options %v", d, o)
				}
			}
			if !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/null" }) {
				t.Errorf("host devices missing: %d", len(s.Linux.Devices))
			}
			if slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/console" || d.Path == "/dev/ptmx" }) {
				t.Error("/dev/console or /dev/ptmx passed through")
			}
			if r := s.Linux.Resources.Devices; len(r) != 1 || !r[0].Allow || r[0].Access != "rwm" {
				t.Errorf("device rules %+v", r)
			}
		}},
		{name: "privileged container in unprivileged pod", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Privileged: true})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "run_as_group without user", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsGroup: &runtime.Int64Value{Value: 5}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "run_as_user and run_as_username", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 5}, RunAsUsername: "app"})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "run_as_user out of range", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: -1}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "unknown run_as_username", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsUsername: "mallory"})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "supplemental groups Merge", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if u := s.Process.User; u.UID != 1000 || u.GID != 1000 || !slices.Equal(u.AdditionalGids, []uint32{1000, 50, 1234}) {
				t.Errorf("user %+v", u)
			}
		}},
		{name: "supplemental groups Strict", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234},
				SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict})
		}, check: func(t *testing.T, s *specs.Spec) {
			if u := s.Process.User; !slices.Equal(u.AdditionalGids, []uint32{1000, 1234}) {
				t.Errorf("user %+v", u)
			}
		}},
		{name: "AppArmor RuntimeDefault and Unconfined are no-ops", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined},
				ApparmorProfile: "runtime/default"})
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.ApparmorProfile != "" {
				t.Errorf("apparmor %q", s.Process.ApparmorProfile)
			}
		}},
		{name: "AppArmor named profile", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "k8s-nginx"}})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "AppArmor legacy named profile", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{ApparmorProfile: "localhost/k8s-nginx"})
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "SELinux options ignored without SELinux", mod: func(t *testing.T, in *Input) {
			withSC(in, &runtime.LinuxContainerSecurityContext{SelinuxOptions: &runtime.SELinuxOption{Level: "s0:c1,c2"}})
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
				t.Error("label set")
			}
		}},
		{name: "SELinux options refused with SELinux", mod: func(t *testing.T, in *Input) {
			in.LSMs.SELinux = true
			withSC(in, &runtime.LinuxContainerSecurityContext{SelinuxOptions: &runtime.SELinuxOption{Type: "spc_t"}})
		}, wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base(t)
			if tc.mod != nil {
				tc.mod(t, &in)
			}
			s, err := Generate(in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("want %v, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

// procMount Unmasked arrives as empty lists; it is honoured only in a pod
// with its own user namespace, where Kubernetes allows it.
func TestProcPaths(t *testing.T) {
	userns := &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}}}}
	for _, tc := range []struct {
		name       string
		sb         *runtime.PodSandboxConfig
		sc         *runtime.LinuxContainerSecurityContext
		wantMasked int
	}{
		{name: "empty without userns: defaults", sb: &runtime.PodSandboxConfig{}, wantMasked: len(MaskedPaths())},
		{name: "empty in a userns pod: Unmasked", sb: userns, wantMasked: 0},
		{name: "kubelet's list in a userns pod", sb: userns, sc: &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{"/proc/kcore"}}, wantMasked: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Sandbox: tc.sb, Config: &runtime.ContainerConfig{Linux: &runtime.LinuxContainerConfig{SecurityContext: tc.sc}}}
			if m, _ := procPaths(in); len(m) != tc.wantMasked {
				t.Fatalf("masked %v", m)
			}
		})
	}
}

// What the daemon pays per CreateContainer for a kubelet-style security
// context (RuntimeDefault seccomp, the kubelet's masks, a non-root user).
func BenchmarkGenerateSecurityContext(b *testing.B) {
	in := Input{
		ID:      "c1",
		Sandbox: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}},
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "web"}, Command: []string{"/app"},
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				RunAsUser: &runtime.Int64Value{Value: 1000}, NoNewPrivs: true, Seccomp: &runtime.SecurityProfile{},
				MaskedPaths: MaskedPaths(), ReadonlyPaths: ReadonlyPaths(),
				Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}}}},
		Rootfs: b.TempDir(),
	}
	for b.Loop() {
		if _, err := Generate(in); err != nil {
			b.Fatal(err)
		}
	}
}
