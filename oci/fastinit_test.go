package oci_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
)

// The common spec takes the fast init; what it does not serve takes the
// Go init, chosen per spec.
func TestFastInitChosenPerSpec(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	tests := []struct {
		name string
		mod  func(s *specs.Spec)
		env  string // GoInitEnv's value
		fast bool
	}{
		{name: "runc spec", mod: func(*specs.Spec) {}, fast: true},
		{name: "seccomp, bind mount, sysctl, devices, rlimits", mod: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: e.dir, Options: []string{"rbind", "ro"}})
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 100}}
		}, fast: true},
		{name: "forced Go init", mod: func(*specs.Spec) {}, env: "1"},
		{name: "terminal", mod: func(s *specs.Spec) { s.Process.Terminal = true }, fast: true},
		{name: "AppArmor profile", mod: func(s *specs.Spec) { s.Process.ApparmorProfile = "unconfined" }},
		{name: "user namespace", mod: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = s.Linux.UIDMappings
		}},
		{name: "createRuntime hook", mod: func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true"}}}
		}},
		{name: "mount namespace joined by path", mod: func(s *specs.Spec) {
			s.Linux.Namespaces[4].Path = "/proc/1/ns/mnt"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(oci.GoInitEnv, tc.env)
			s := baseSpec(root, "true")
			tc.mod(s)
			why := e.rt.FastInitRefusal(s)
			if fast := why == ""; fast != tc.fast {
				t.Errorf("fast init: %v (refused for %q), want %v", fast, why, tc.fast)
			}
		})
	}
}

// A created fast init, waiting for start, is no door to the runtime: its
// binary (/proc/<pid>/exe, the runtime's own) cannot be written, even by
// root (CVE-2019-5736), and it holds only close-on-exec fds; it runs
// under its own name until the exec.
func TestFastInitBeforeStart(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "true")
	if why := e.rt.FastInitRefusal(spec); why != "" {
		t.Fatalf("the fast init refused the runc spec: %s", why)
	}
	spec.Linux.CgroupsPath = e.cg + "/before"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := e.rt.Create(ctx, "before", spec, oci.IO{})
	must(t, err)
	defer func() { _ = e.rt.Delete(ctx, "before", true); _, _ = c.Wait(); e.assertClean(t, "before") }()
	pid := strconv.Itoa(c.Pid)
	if b, _ := os.ReadFile("/proc/" + pid + "/comm"); strings.TrimSpace(string(b)) != "cri-init" {
		t.Errorf("init comm %q, want cri-init", b)
	}
	f, err := os.OpenFile("/proc/"+pid+"/exe", os.O_WRONLY, 0)
	if err == nil {
		f.Close()
		t.Fatal("the init's binary opened for writing")
	}
	if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.ETXTBSY) && !errors.Is(err, unix.EPERM) {
		t.Errorf("open the init's binary for writing: %v, want EROFS", err)
	}
	checkFds(t, "fast init", c.Pid, true)
	must(t, e.rt.Start(ctx, "before"))
	if st, err := c.Wait(); err != nil || st.ExitCode() != 0 {
		t.Errorf("wait: %v exit %d", err, st.ExitCode())
	}
	must(t, e.rt.Delete(ctx, "before", false))
}

// Inits started at once by one process each report to their own caller:
// with CLONE_VM they share the runtime's memory, so nothing of a child's
// may live in a global.
func TestFastInitsAtOnce(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := "at-once-" + strconv.Itoa(i)
			spec := baseSpec(root, "true")
			spec.Linux.CgroupsPath = e.cg + "/" + id
			want := ""
			if i%2 == 1 { // fails in the child, naming its own cwd
				want = "/missing-" + strconv.Itoa(i)
				spec.Process.Cwd = want
			}
			c, err := e.rt.Create(ctx, id, spec, oci.IO{})
			switch {
			case want != "" && err == nil:
				_ = e.rt.Delete(ctx, id, true)
				_, _ = c.Wait()
				errs <- errors.New(id + ": created with a missing cwd")
			case want != "" && !strings.Contains(err.Error(), want):
				errs <- errors.New(id + ": error " + err.Error() + ", want one naming " + want)
			case want == "" && err != nil:
				errs <- errors.New(id + ": " + err.Error())
			case want == "":
				err = e.rt.Start(ctx, id)
				if _, werr := c.Wait(); err == nil {
					err = werr
				}
				if derr := e.rt.Delete(ctx, id, true); err == nil {
					err = derr
				}
				errs <- err
			default:
				errs <- nil
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
