package cgroups

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// testPath returns a unique "/crisrv-test-<hex>/ctr" and registers a leak
// check: after the test no hierarchy may hold the top directory.
func testPath(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	top := "crisrv-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		for _, mnt := range allMounts(t) {
			if _, err := os.Stat(filepath.Join(mnt, top)); err == nil {
				t.Errorf("leaked cgroup %s", filepath.Join(mnt, top))
			}
		}
	})
	return "/" + top + "/ctr"
}

func allMounts(t testing.TB) []string {
	l, err := DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range l.V1 {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	if l.Unified != "" {
		out = append(out, l.Unified)
	}
	return out
}

// unifiedV2 is a pure-v2 layout over this host's cgroup2 mount: on the
// hybrid build machine it exercises the v2 manager's core files
// (cgroup.procs, cgroup.kill, cgroup.freeze, cgroup.events, eBPF devices)
// without enabling any controller in the shared root.
func unifiedV2(t testing.TB) []Option {
	t.Helper()
	l, err := DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	if l.Unified == "" {
		t.Skip("no cgroup2 mount")
	}
	return []Option{WithLayout(Layout{Mode: ModeV2, Unified: l.Unified}), WithV2Controllers()}
}

// child is a shell that waits for a line on stdin before running script,
// so the test can move it into a cgroup before it forks anything.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bytes.Buffer
	done  chan error
}

func startChild(t testing.TB, script string) *child {
	t.Helper()
	c := &child{cmd: exec.Command("/bin/sh", "-c", "read _; "+script), out: new(bytes.Buffer), done: make(chan error, 1)}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Errorf("child %d did not exit", c.cmd.Process.Pid)
		}
	})
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }
func (c *child) go_()     { _, _ = c.stdin.Write([]byte("go\n")) }

func (c *child) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("child did not exit; output: %s", c.out)
		return nil
	}
}

// mustDestroy destroys m at the end and checks its directories are gone
// and no process is left in it.
func mustDestroy(t testing.TB, m Manager) {
	t.Helper()
	t.Cleanup(func() {
		if pids, _ := m.Pids(); len(pids) > 0 {
			_ = m.Kill(9)
			waitEmpty(t, m)
		}
		if err := m.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		for _, d := range m.Paths() {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("Destroy left %s", d)
			}
		}
	})
}

func waitEmpty(t testing.TB, m Manager) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := m.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still in cgroup", pids)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readBack(t testing.TB, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// procStat returns state and utime+stime of pid from /proc/pid/stat.
func procStat(t testing.TB, pid int) (string, uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return f[0], u + s
}

func ptr[T any](v T) *T { return &v }
