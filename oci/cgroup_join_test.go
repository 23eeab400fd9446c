package oci_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/cgroups"
)

// The init and an exec'd process join the container's cgroup by themselves
// (clone3 into the v2 directory, the v1 tasks files before the Go runtime
// starts): seen from the host, each is in the container's cgroup in every
// hierarchy, with or without a user namespace, and Delete removes the
// cgroup everywhere. A manager without PrepareFork (a fake, a future
// driver) gets the same result by the old way, a pid written after start.
func TestInitAndExecJoinCgroup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		userns    bool
		noPrefork bool
	}{
		{"plain", false, false},
		{"user namespace", true, false},
		{"manager without PrepareFork", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.noPrefork {
				rt, err := oci.New(oci.Config{StateDir: filepath.Join(e.dir, "state"), NewCgroup: func(p string) (oci.CgroupManager, error) {
					m, err := cgroups.New(p)
					// Embedding hides every method but the interface's.
					return struct{ oci.CgroupManager }{m}, err
				}})
				must(t, err)
				defer rt.Close()
				e.rt = rt
			}
			root := busyboxRootfs(t, e.dir)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			spec := baseSpec(root, "sleep", "100")
			if tc.userns {
				spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
				m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
				spec.Linux.UIDMappings, spec.Linux.GIDMappings = m, m
				must(t, os.Chown(root, 300000, 300000))
				must(t, os.Chmod(e.dir, 0o755))
				must(t, os.Chmod(filepath.Dir(e.dir), 0o755))
			}
			cg := e.cg + "/join"
			spec.Linux.CgroupsPath = cg
			c, err := e.rt.Create(ctx, "join", spec, oci.IO{})
			must(t, err)
			defer e.rt.Delete(ctx, "join", true)
			checkInCgroup(t, "init", c.Pid, cg)
			must(t, e.rt.Start(ctx, "join"))
			p, err := e.rt.Exec(ctx, "join", &specs.Process{Args: []string{"sleep", "100"}, Env: []string{"PATH=/bin"}, Cwd: "/"}, oci.IO{})
			must(t, err)
			checkInCgroup(t, "exec", p.Pid, cg)
			must(t, e.rt.Kill(ctx, "join", unix.SIGKILL, true))
			_, _ = p.Wait()
			_, _ = c.Wait()
			must(t, e.rt.Delete(ctx, "join", false))
			hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
			for _, h := range hiers {
				if _, err := os.Stat(filepath.Join(h, cg)); err == nil {
					t.Errorf("Delete left %s", filepath.Join(h, cg))
				}
			}
		})
	}
}

// checkInCgroup fails unless every hierarchy of /proc/<pid>/cgroup names
// path (the host's view: the test runs in the root cgroup namespace).
func checkInCgroup(t *testing.T, what string, pid int, path string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	must(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		if f := strings.SplitN(l, ":", 3); len(f) != 3 || f[2] != path {
			t.Errorf("%s %d: %q, want every hierarchy in %s", what, pid, l, path)
		}
	}
	if len(lines) < 2 {
		t.Errorf("%s %d: /proc/pid/cgroup %q", what, pid, b)
	}
}
