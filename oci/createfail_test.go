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
			s.Linux.Sysctl = map[string]string{"kernel.nosuchknob": "1"}
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
