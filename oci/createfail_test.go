package oci_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// A create that fails at any phase leaves nothing behind: no process, no
// cgroup, no mount, no state; and the id can be used again at once.
func TestCreateFailureAtEachPhaseLeavesNothing(t *testing.T) {
	bothInits(t, testCreateFailureAtEachPhaseLeavesNothing)
}

func testCreateFailureAtEachPhaseLeavesNothing(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	fail := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no >&2; exit 3"}}
	tests := []struct {
		name  string
		mod   func(*specs.Spec)
		class error // nil: any error
	}{
		{name: "joined netns missing (parent, before clone)", mod: func(s *specs.Spec) {
			setNS(s, specs.NetworkNamespace, "/proc/self/ns/nope")
		}},
		{name: "joined mount namespace missing (constructor)", mod: func(s *specs.Spec) {
			setNS(s, specs.MountNamespace, filepath.Join(e.dir, "nope"))
		}},
		{name: "bad mount (init, mounts)", mod: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/m", Type: "nosuchfs", Source: "x"})
		}},
		{name: "bind source missing", mod: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/m", Type: "bind", Source: filepath.Join(e.dir, "nope"), Options: []string{"rbind"}})
		}, class: errdefs.ErrInvalidArgument},
		{name: "prestart hook fails", mod: func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{fail}} //nolint:staticcheck
		}},
		{name: "createRuntime hook fails", mod: func(s *specs.Spec) { s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{fail}} }},
		{name: "createContainer hook fails", mod: func(s *specs.Spec) { s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{fail}} }},
		{name: "bad sysctl (after pivot_root)", mod: func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.nosuchknob": "1"}
		}, class: errdefs.ErrInvalidArgument},
		{name: "bad rootfs propagation (finish)", mod: func(s *specs.Spec) {
			s.Root.Readonly = true
			s.Linux.RootfsPropagation = "nosuchprop"
		}, class: errdefs.ErrInvalidArgument},
		{name: "cwd missing (process)", mod: func(s *specs.Spec) { s.Process.Cwd = "/nope" }, class: errdefs.ErrInvalidArgument},
		{name: "rlimit above hard (process)", mod: func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 40, Soft: 1 << 40}}
		}, class: errdefs.ErrPermissionDenied},
		{name: "binary missing (lookup)", mod: func(s *specs.Spec) { s.Process.Args = []string{"nope"} }, class: errdefs.ErrInvalidArgument},
		{name: "cgroup limit refused (after the init is ready)", mod: func(s *specs.Spec) {
			cpus := "4096-4097"
			s.Linux.Resources = &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: cpus}}
		}},
		{name: "oomScoreAdj below ours (parent, after clone)", mod: func(s *specs.Spec) {
			low := -999
			s.Process.OOMScoreAdj = &low
		}, class: errdefs.ErrPermissionDenied},
		{name: "user namespace with a bad mapping", mod: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 0}}
			s.Linux.UIDMappings, s.Linux.GIDMappings = m, m
		}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "true")
			tc.mod(spec)
			spec.Linux.CgroupsPath = e.cg + "/fail"
			c, err := e.rt.Create(ctx, "fail", spec, oci.IO{})
			if err == nil {
				_ = e.rt.Delete(ctx, "fail", true)
				_, _ = c.Wait()
				t.Fatal("create succeeded")
			}
			if tc.class != nil && !errors.Is(err, tc.class) {
				t.Errorf("err %v, want class %v", err, tc.class)
			}
			t.Logf("create: %v", err)
			e.assertClean(t, "fail")
			if _, err := os.Stat(filepath.Join(e.dir, "state", "fail")); err == nil {
				t.Errorf("state dir left")
			}
			// The id is free again.
			ok := baseSpec(root, "true")
			if _, st, err := e.run("fail", ok); err != nil || st.ExitCode() != 0 {
				t.Errorf("create after the failure: %v %+v", err, st)
			}
		})
	}
}

func setNS(s *specs.Spec, typ specs.LinuxNamespaceType, path string) {
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			s.Linux.Namespaces[i].Path = path
		}
	}
}

// Hooks as runtime-spec defines them: an absolute path (a relative one is
// refused before anything is made), their own env and args.
func TestHookPathAndEnv(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	out := filepath.Join(e.dir, "hookenv")
	t.Run("relative path refused", func(t *testing.T) {
		spec := baseSpec(root, "true")
		spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "sh", Args: []string{"sh", "-c", "true"}}}}
		if _, _, err := e.run("hookpath", spec); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "hooks") {
			t.Fatalf("relative hook path: %v, want invalid argument naming the hook", err)
		}
		e.assertClean(t, "hookpath")
	})
	t.Run("env and args", func(t *testing.T) {
		spec := baseSpec(root, "true")
		spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", `echo "$0 $X" > ` + out, "arg0"}, Env: []string{"X=y"}}}}
		_, st, err := e.run("hookenv", spec)
		must(t, err)
		b, _ := os.ReadFile(out)
		if st.ExitCode() != 0 || strings.TrimSpace(string(b)) != "arg0 y" {
			t.Fatalf("hook saw %q, want \"arg0 y\"", b)
		}
	})
}

// A sysctl is written only inside a namespace of the container's own: one
// the kernel does not namespace (or whose namespace the container shares
// with the host) is refused by name, so a spec cannot change the host.
// Each case asks for the host's current value, so even a regression leaves
// the host as it was.
func TestSysctlOnlyInOwnNamespace(t *testing.T) { bothInits(t, testSysctlOnlyInOwnNamespace) }

func testSysctlOnlyInOwnNamespace(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	cur := func(key string) string {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		must(t, err)
		return strings.TrimSpace(string(b))
	}
	without := func(s *specs.Spec, typ specs.LinuxNamespaceType) {
		var keep []specs.LinuxNamespace
		for _, ns := range s.Linux.Namespaces {
			if ns.Type != typ {
				keep = append(keep, ns)
			}
		}
		s.Linux.Namespaces = keep
	}
	tests := []struct {
		name, key string
		mod       func(*specs.Spec)
		wantErr   bool
	}{
		{name: "vm sysctl is the host's", key: "vm.stat_interval", wantErr: true},
		{name: "kernel sysctl not namespaced", key: "kernel.printk_ratelimit", wantErr: true},
		{name: "net sysctl in the host's netns", key: "net.ipv4.ip_forward", mod: func(s *specs.Spec) { without(s, specs.NetworkNamespace) }, wantErr: true},
		{name: "ipc sysctl in the host's ipc namespace", key: "kernel.msgmax", mod: func(s *specs.Spec) { without(s, specs.IPCNamespace) }, wantErr: true},
		{name: "fs.mqueue in the host's ipc namespace", key: "fs.mqueue.msg_max", mod: func(s *specs.Spec) { without(s, specs.IPCNamespace) }, wantErr: true},
		{name: "net sysctl in its own netns", key: "net.ipv4.ip_forward"},
		{name: "ipc sysctl in its own ipc namespace", key: "kernel.msgmax"},
		{name: "fs.mqueue in its own ipc namespace", key: "fs.mqueue.msg_max"},
		{name: "kernel.shm_rmid_forced in its own ipc namespace", key: "kernel.shm_rmid_forced"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "true")
			if tc.mod != nil {
				tc.mod(spec)
			}
			spec.Linux.Sysctl = map[string]string{tc.key: cur(tc.key)}
			_, _, err := e.run("sysctl", spec)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.key) {
					t.Fatalf("err %v, want invalid argument naming %s", err, tc.key)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			e.assertClean(t, "sysctl")
		})
	}
}
