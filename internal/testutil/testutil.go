// Package testutil holds what the real-kernel tests of several packages
// share: a root filesystem built from the node's dynamic busybox, and the
// test binary's child processes for leak checks. Only tests import it.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BusyboxRootfs builds dir/rootfs from the node's dynamic busybox and the
// libraries ldd names, with a symlink per applet and a root-only
// /etc/passwd. extraDirs are made beside bin, proc, sys, dev, tmp and etc.
// It skips the test when busybox is missing; building twice in one dir
// returns the first.
func BusyboxRootfs(t testing.TB, dir string, applets []string, extraDirs ...string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	if _, err := os.Stat(filepath.Join(root, "bin", "busybox")); err == nil {
		return root
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox (the dynamic one, Debian's)")
	}
	for _, d := range append([]string{"bin", "proc", "sys", "dev", "tmp", "etc"}, extraDirs...) {
		Must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	out, err := exec.Command("ldd", bb).Output()
	Must(t, err)
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				CopyFile(t, f, filepath.Join(root, f))
			}
		}
	}
	CopyFile(t, bb, filepath.Join(root, "bin", "busybox"))
	for _, a := range applets {
		Must(t, os.Symlink("busybox", filepath.Join(root, "bin", a)))
	}
	Must(t, os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
	return root
}

// CopyFile copies src to dst (mode 0755), making dst's directory.
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	Must(t, err)
	Must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	Must(t, os.WriteFile(dst, b, 0o755))
}

// Must fails the test on an error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Children lists this process's children, zombies included, as
// "pid(comm)": a test that leaves none has reaped everything it started.
func Children() []string {
	var out []string
	for _, k := range ChildrenOf(os.Getpid()) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(k) + "/comm")
		out = append(out, strconv.Itoa(k)+"("+strings.TrimSpace(string(b))+")")
	}
	return out
}

// ChildrenOf lists the pids whose parent is ppid, zombies included.
func ChildrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	want := strconv.Itoa(ppid)
	for _, d := range ents {
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		// The command may hold spaces and parentheses: fields start after
		// the last ')'.
		i := strings.LastIndexByte(s, ')')
		if f := strings.Fields(s[i+1:]); len(f) > 2 && f[1] == want {
			if pid, err := strconv.Atoi(d.Name()); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}
