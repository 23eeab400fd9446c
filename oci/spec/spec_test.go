package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

func rootfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n# c\nwww:x:33:34::/var/www:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nwww-data:x:34:\nstaff:x:50:app,www\napp:x:1000:\n"), 0o644)
	return dir
}

func base(t *testing.T) Input {
	return Input{
		ID:     "c1",
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "web"}},
		Sandbox: &runtime.PodSandboxConfig{Hostname: "pod1",
			Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}},
		SandboxID: "s1",
		Image:     imagespec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"cmd1"}, Env: []string{"PATH=/img", "A=img"}, WorkingDir: "/w"},
		Rootfs:    rootfs(t),
		NetNS:     "/run/ns/net", IPCNS: "/run/ns/ipc", UTSNS: "/run/ns/uts",
		ShmPath: "/run/pod/shm", HostsPath: "/run/pod/hosts", ResolvPath: "/run/pod/resolv.conf", HostnamePath: "/run/pod/hostname",
		CgroupParent: "/kubepods/pod-u",
	}
}

func TestArgs(t *testing.T) {
	img := imagespec.ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"c"}}
	for _, tc := range []struct {
		name      string
		cmd, args []string
		img       imagespec.ImageConfig
		want      []string
		wantErr   bool
	}{
		{name: "image only", img: img, want: []string{"/ep", "c"}},
		{name: "command replaces entrypoint and cmd", cmd: []string{"/x"}, img: img, want: []string{"/x"}},
		{name: "command and args", cmd: []string{"/x"}, args: []string{"a"}, img: img, want: []string{"/x", "a"}},
		{name: "args replace cmd only", args: []string{"a"}, img: img, want: []string{"/ep", "a"}},
		{name: "cmd only image", img: imagespec.ImageConfig{Cmd: []string{"sh"}}, want: []string{"sh"}},
		{name: "nothing at all", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "x"}, Command: tc.cmd, Args: tc.args}
			got, err := Args(c, tc.img)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("want InvalidArgument, got %v", err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name  string
		image []string
		kv    map[string]string
		want  []string
	}{
		{name: "default PATH", want: []string{defaultPath}},
		{name: "kubelet overrides in place", image: []string{"PATH=/p", "A=1", "B=2"}, kv: map[string]string{"A": "x"},
			want: []string{"PATH=/p", "A=x", "B=2"}},
		{name: "kubelet adds", image: []string{"PATH=/p"}, kv: map[string]string{"C": "3"}, want: []string{"PATH=/p", "C=3"}},
		{name: "value with =", image: []string{"PATH=/p", "Q=a=b"}, want: []string{"PATH=/p", "Q=a=b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var kv []*runtime.KeyValue
			for _, k := range sortedKeys(tc.kv) {
				kv = append(kv, &runtime.KeyValue{Key: k, Value: []byte(tc.kv[k])})
			}
			if got := Env(tc.image, kv); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}

func TestResolveUser(t *testing.T) {
	root := rootfs(t)
	for _, tc := range []struct {
		name     string
		user     string
		uid, gid uint32
		wantErr  bool
	}{
		{name: "empty is root", user: ""},
		{name: "numeric uid with passwd entry takes its gid", user: "1000", uid: 1000, gid: 1000},
		{name: "numeric uid unknown", user: "4242", uid: 4242},
		{name: "uid:gid", user: "5:6", uid: 5, gid: 6},
		{name: "name", user: "www", uid: 33, gid: 34},
		{name: "name:group", user: "www:staff", uid: 33, gid: 50},
		{name: "unknown name", user: "nobody2", wantErr: true},
		{name: "unknown group", user: "www:nogroup", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid, err := ResolveUser(root, tc.user)
			if tc.wantErr != (err != nil) || uid != tc.uid || gid != tc.gid {
				t.Fatalf("got %d:%d %v", uid, gid, err)
			}
		})
	}
}

// A rootfs whose /etc/passwd is a symlink to the host's must read nothing
// from the host.
func TestResolveUserStaysInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	host := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(host, []byte("evil:x:7:7::/:/bin/sh\n"), 0o644)
	os.Symlink(host, filepath.Join(root, "etc/passwd"))
	if _, _, err := ResolveUser(root, "evil"); err == nil {
		t.Fatal("user resolved through a symlink out of the rootfs")
	}
	os.Remove(filepath.Join(root, "etc/passwd"))
	os.Symlink("../../../../../../.."+host, filepath.Join(root, "etc/passwd"))
	if _, _, err := ResolveUser(root, "evil"); err == nil {
		t.Fatal("user resolved through ../ out of the rootfs")
	}
}

func mountAt(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestGenerate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*Input)
		check   func(*testing.T, *specs.Spec)
		wantErr error
	}{
		{name: "defaults", check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Args, []string{"/entry", "cmd1"}) || s.Process.Cwd != "/w" || s.Hostname != "pod1" {
				t.Fatalf("process: %+v", s.Process)
			}
			for _, d := range []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/dev/shm", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
				if mountAt(s, d) == nil {
					t.Errorf("no mount at %s", d)
				}
			}
			if m := mountAt(s, "/dev/shm"); m.Source != "/run/pod/shm" {
				t.Errorf("shm not from the pod: %+v", m)
			}
			if !slices.Contains(mountAt(s, "/sys").Options, "ro") {
				t.Error("/sys not read-only")
			}
			want := map[specs.LinuxNamespaceType]string{specs.MountNamespace: "", specs.NetworkNamespace: "/run/ns/net",
				specs.IPCNamespace: "/run/ns/ipc", specs.UTSNamespace: "/run/ns/uts", specs.PIDNamespace: ""}
			if len(s.Linux.Namespaces) != len(want) {
				t.Fatalf("namespaces: %+v", s.Linux.Namespaces)
			}
			for _, n := range s.Linux.Namespaces {
				if p, ok := want[n.Type]; !ok || p != n.Path {
					t.Errorf("namespace %s path %q", n.Type, n.Path)
				}
			}
			if s.Linux.CgroupsPath != "/kubepods/pod-u/c1" {
				t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
			}
			if s.Annotations[AnnotationSandboxID] != "s1" || s.Annotations[AnnotationContainerName] != "web" || s.Annotations[AnnotationContainerType] != "container" {
				t.Errorf("annotations %v", s.Annotations)
			}
			if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_NET_BIND_SERVICE") || slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
				t.Errorf("caps %v", s.Process.Capabilities.Bounding)
			}
			if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
				t.Error("no masked/readonly paths")
			}
		}},
		{name: "host network and pid", mod: func(in *Input) {
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.NetworkNamespace || n.Type == specs.UTSNamespace || n.Type == specs.PIDNamespace {
					t.Errorf("host namespace %s got an entry", n.Type)
				}
			}
		}},
		{name: "pod pid namespace joined", mod: func(in *Input) {
			in.PIDNS = "/run/ns/pid"
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/run/ns/pid"}) {
				t.Errorf("pid ns %+v", s.Linux.Namespaces)
			}
		}},
		{name: "target pid namespace joined", mod: func(in *Input) {
			in.PIDNS = "/proc/42/ns/pid"
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "c0"}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"}) {
				t.Errorf("pid ns %+v", s.Linux.Namespaces)
			}
		}},
		{name: "container pid namespace is its own", mod: func(in *Input) {
			in.PIDNS = "/run/ns/pid"
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace}) {
				t.Errorf("pid ns %+v", s.Linux.Namespaces)
			}
		}},
		{name: "host ipc has no ipc entry", mod: func(in *Input) {
			in.IPCNS = ""
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			for _, n := range s.Linux.Namespaces {
				if n.Type == specs.IPCNamespace {
					t.Errorf("host ipc got an entry %+v", n)
				}
			}
		}},
		{name: "bind mounts and propagation", mod: func(in *Input) {
			in.Config.Mounts = []*runtime.Mount{
				{ContainerPath: "/a", HostPath: "/h/a"},
				{ContainerPath: "/b", HostPath: "/h/b", Readonly: true, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
				{ContainerPath: "/c", HostPath: "/h/c", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
				{ContainerPath: "/d", HostPath: "/h/d", Readonly: true, RecursiveReadOnly: true},
				{ContainerPath: "/etc/hosts", HostPath: "/kubelet/hosts"},
			}
		}, check: func(t *testing.T, s *specs.Spec) {
			for dst, want := range map[string][]string{"/a": {"rbind", "rprivate", "rw"}, "/b": {"rbind", "rslave", "ro"},
				"/c": {"rbind", "rshared", "rw"}, "/d": {"rbind", "rprivate", "rro"}} {
				if m := mountAt(s, dst); m == nil || !slices.Equal(m.Options, want) {
					t.Errorf("%s: %+v", dst, m)
				}
			}
			if m := mountAt(s, "/etc/hosts"); m.Source != "/kubelet/hosts" {
				t.Errorf("kubelet's /etc/hosts did not win: %+v", m)
			}
		}},
		{name: "relative mount", mod: func(in *Input) { in.Config.Mounts = []*runtime.Mount{{ContainerPath: "a", HostPath: "/h"}} }, wantErr: errdefs.ErrInvalidArgument},
		{name: "rro without ro", mod: func(in *Input) {
			in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/a", HostPath: "/h", RecursiveReadOnly: true}}
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "resources", mod: func(in *Input) {
			in.DaemonOOMScoreAdj = 0
			in.Config.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
				CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, CpusetCpus: "0", MemoryLimitInBytes: 64 << 20,
				MemorySwapLimitInBytes: 128 << 20, OomScoreAdj: -997,
				HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
				Unified:        map[string]string{"pids.max": "100", "memory.high": "50000000"}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0" {
				t.Errorf("cpu %+v", r.CPU)
			}
			if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 128<<20 {
				t.Errorf("memory %+v", r.Memory)
			}
			if r.Pids == nil || *r.Pids.Limit != 100 || r.Unified["memory.high"] != "50000000" {
				t.Errorf("pids/unified %+v %v", r.Pids, r.Unified)
			}
			if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" {
				t.Errorf("hugepages %+v", r.HugepageLimits)
			}
			if *s.Process.OOMScoreAdj != 0 {
				t.Errorf("oom_score_adj not clamped to the daemon's: %d", *s.Process.OOMScoreAdj)
			}
			if len(r.Devices) == 0 || r.Devices[0].Allow {
				t.Errorf("default deny device rule lost: %+v", r.Devices)
			}
		}},
		{name: "oom_score_adj kept with CAP_SYS_RESOURCE", mod: func(in *Input) {
			in.CapSysResource = true
			in.Config.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{OomScoreAdj: -997}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if *s.Process.OOMScoreAdj != -997 {
				t.Errorf("oom_score_adj %d", *s.Process.OOMScoreAdj)
			}
		}},
		{name: "swap below memory", mod: func(in *Input) {
			in.Config.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 10 << 20, MemorySwapLimitInBytes: 1 << 20}}
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "user from kubelet, supplementary groups", mod: func(in *Input) {
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				RunAsUsername: "app", RunAsGroup: &runtime.Int64Value{Value: 7}, SupplementalGroups: []int64{99}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			u := s.Process.User
			if u.UID != 1000 || u.GID != 7 || !slices.Equal(u.AdditionalGids, []uint32{7, 50, 99}) {
				t.Errorf("user %+v", u)
			}
		}},
		{name: "user from image", mod: func(in *Input) { in.Image.User = "www" }, check: func(t *testing.T, s *specs.Spec) {
			if s.Process.User.UID != 33 || s.Process.User.GID != 34 {
				t.Errorf("user %+v", s.Process.User)
			}
		}},
		{name: "caps add and drop", mod: func(in *Input) {
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				Capabilities: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"CAP_CHOWN"}}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities.Bounding
			if !slices.Contains(c, "CAP_NET_ADMIN") || slices.Contains(c, "CAP_CHOWN") {
				t.Errorf("caps %v", c)
			}
		}},
		{name: "drop all", mod: func(in *Input) {
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: []string{"kill"}}}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_KILL"}) {
				t.Errorf("caps %v", s.Process.Capabilities.Bounding)
			}
		}},
		{name: "privileged", mod: func(in *Input) {
			in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
			in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || s.Linux.MaskedPaths != nil {
				t.Errorf("privileged: caps %v masked %v", s.Process.Capabilities.Bounding, s.Linux.MaskedPaths)
			}
		}},
		{name: "tty and env", mod: func(in *Input) {
			in.Config.Tty = true
			in.Config.Envs = []*runtime.KeyValue{{Key: "A", Value: []byte("k")}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !s.Process.Terminal || !slices.Equal(s.Process.Env, []string{"PATH=/img", "A=k"}) {
				t.Errorf("tty %v env %v", s.Process.Terminal, s.Process.Env)
			}
		}},
		{name: "device", mod: func(in *Input) {
			in.Config.Devices = []*runtime.Device{{HostPath: "/dev/null", ContainerPath: "/dev/xnull", Permissions: "rw"}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 || s.Linux.Devices[0].Path != "/dev/xnull" {
				t.Errorf("devices %+v", s.Linux.Devices)
			}
			last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
			if !last.Allow || last.Access != "rw" || *last.Major != 1 {
				t.Errorf("device rule %+v", last)
			}
		}},
		{name: "device not a device", mod: func(in *Input) {
			in.Config.Devices = []*runtime.Device{{HostPath: "/etc/passwd", ContainerPath: "/dev/x"}}
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "systemd cgroup parent", mod: func(in *Input) { in.CgroupParent = "kubepods-pod1.slice" }, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.CgroupsPath != "kubepods-pod1.slice:cri-server:c1" {
				t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
			}
		}},
		{name: "missing name", mod: func(in *Input) { in.Config.Metadata = nil }, wantErr: errdefs.ErrInvalidArgument},
		{name: "relative rootfs", mod: func(in *Input) { in.Rootfs = "r" }, wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base(t)
			if tc.mod != nil {
				tc.mod(&in)
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

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		name, kubelet, image string
		want                 unix.Signal
		wantErr              bool
	}{
		{name: "default", want: unix.SIGTERM},
		{name: "image name", image: "SIGQUIT", want: unix.SIGQUIT},
		{name: "image short name", image: "usr1", want: unix.SIGUSR1},
		{name: "image number", image: "9", want: unix.SIGKILL},
		{name: "kubelet wins", kubelet: "SIGINT", image: "SIGQUIT", want: unix.SIGINT},
		{name: "runtime default", kubelet: "RUNTIME_DEFAULT", image: "SIGHUP", want: unix.SIGHUP},
		{name: "bad", image: "SIGNOPE", wantErr: true},
		{name: "out of range", image: "99", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StopSignal(tc.kubelet, tc.image)
			if tc.wantErr != (err != nil) || (!tc.wantErr && got != tc.want) {
				t.Fatalf("got %v %v", got, err)
			}
		})
	}
}
