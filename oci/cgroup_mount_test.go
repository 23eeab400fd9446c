package oci_test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The cgroup mount shows the container its own cgroup, read-only, nosuid,
// nodev and noexec on every hierarchy, with a cgroup namespace (fresh
// mounts) or without one (binds of the container's directories, whose
// attributes are set in one recursive mount_setattr).
func TestCgroupMount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cgroupNS bool
	}{
		{"cgroup namespace", true},
		{"binds without a cgroup namespace", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			root := busyboxRootfs(t, e.dir)
			spec := baseSpec(root, "sh", "-c", "grep ' /sys/fs/cgroup/' /proc/self/mountinfo; echo CG; cat /proc/self/cgroup; echo LS; "+
				"ls /sys/fs/cgroup/memory /sys/fs/cgroup/pids; mkdir /sys/fs/cgroup/memory/x && echo MKDIR-OK; true")
			if !tc.cgroupNS {
				var ns []specs.LinuxNamespace
				for _, n := range spec.Linux.Namespaces {
					if n.Type != specs.CgroupNamespace {
						ns = append(ns, n)
					}
				}
				spec.Linux.Namespaces = ns
			}
			out, st, err := e.run("cgmount", spec)
			must(t, err)
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			mounts := 0
			for _, l := range strings.Split(out, "\n") {
				f := strings.Fields(l)
				if len(f) < 6 || !strings.HasPrefix(f[4], "/sys/fs/cgroup/") {
					continue
				}
				mounts++
				for _, opt := range []string{"ro", "nosuid", "nodev", "noexec"} {
					if !strings.Contains(","+f[5]+",", ","+opt+",") {
						t.Errorf("%s: options %s lack %s", f[4], f[5], opt)
					}
				}
			}
			if mounts < 2 {
				t.Errorf("%d cgroup mounts:\n%s", mounts, out)
			}
			for _, want := range []string{"memory.limit_in_bytes", "pids.max"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %s (the container's own cgroup):\n%s", want, out)
				}
			}
			// A cgroup namespace is rooted at the container's cgroup.
			_, cg, _ := strings.Cut(out, "CG\n")
			cg, _, _ = strings.Cut(cg, "LS\n")
			for _, l := range strings.Split(strings.TrimSpace(cg), "\n") {
				if tc.cgroupNS && !strings.HasSuffix(l, ":/") {
					t.Errorf("/proc/self/cgroup line %q, want the namespace root", l)
				}
			}
			// The host's tree would list the test's own cgroup directory.
			_, ls, _ := strings.Cut(out, "LS\n")
			if strings.Contains(ls, "MKDIR-OK") || strings.Contains(ls, "cri-server-test") {
				t.Errorf("cgroup mount writable, or shows the host's tree:\n%s", out)
			}
		})
	}
}
