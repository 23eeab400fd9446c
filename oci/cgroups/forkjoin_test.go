package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// A child started with a ForkJoin (clone3 into the v2 directory, "0"
// written into each v1 tasks file while it has one thread) ends up in the
// cgroup of every hierarchy, as after Apply(pid), and Destroy still removes
// everything once it has exited.
func TestPrepareForkJoinsEveryHierarchy(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) []Option
	}{
		{"host layout", func(t *testing.T) []Option { return nil }},
		{"pure v2 over the unified mount", func(t *testing.T) []Option { return unifiedV2(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPath(t)
			m, err := New(p, tc.opts(t)...)
			if err != nil {
				t.Fatal(err)
			}
			mustDestroy(t, m)
			j, err := m.(ForkJoiner).PrepareFork()
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			// bash is single-threaded, so each "echo 0" moves it whole (dash
			// does not take fds above 9).
			var script strings.Builder
			for i := range j.Tasks {
				fmt.Fprintf(&script, "echo 0 >&%d || exit 1; ", 3+i)
			}
			script.WriteString("cat /proc/self/cgroup")
			cmd := exec.Command("/bin/bash", "-c", script.String())
			cmd.ExtraFiles = j.Tasks
			if j.CgroupFD >= 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: j.CgroupFD}
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v: %s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			joined := 0
			for _, l := range lines {
				f := strings.SplitN(l, ":", 3)
				if len(f) != 3 {
					t.Fatalf("bad /proc/self/cgroup line %q", l)
				}
				if f[2] == p {
					joined++
				}
			}
			if want := len(j.Tasks) + min(1, j.CgroupFD+1); joined != want {
				t.Errorf("child in %d hierarchies' %s, want %d:\n%s", joined, p, want, out)
			}
			if pids, _ := m.Pids(); len(pids) > 0 {
				t.Errorf("pids %v still in the cgroup after the child exited", pids)
			}
		})
	}
}

// PrepareFork on a name the kernel refuses creates nothing.
func TestPrepareForkFailureUndoes(t *testing.T) {
	requireRoot(t)
	p := testPath(t)
	m, err := New(p + "/bad\nname") // cgroup_mkdir refuses a newline
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.(ForkJoiner).PrepareFork(); err == nil {
		t.Fatal("PrepareFork of an over-long name succeeded")
	}
	for _, d := range m.Paths() {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("left %s", d)
		}
	}
}
