package sandbox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var applets = []string{"sh", "cat", "hostname", "tr", "sleep", "echo"}

// busyboxRootfs builds a rootfs from the node's dynamic busybox and its libs.
func busyboxRootfs(t testing.TB, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox")
	}
	out, err := exec.Command("ldd", bb).Output()
	must(t, err)
	for _, l := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(l) {
			if strings.HasPrefix(f, "/") {
				copyFile(t, f, filepath.Join(root, f))
			}
		}
	}
	copyFile(t, bb, filepath.Join(root, "bin/busybox"))
	for _, a := range applets {
		must(t, os.Symlink("busybox", filepath.Join(root, "bin", a)))
	}
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
	return root
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	must(t, os.WriteFile(dst, b, 0o755))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// children lists this process's children as "pid(comm)".
func children() []string {
	var out []string
	for _, k := range childrenOf(os.Getpid()) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(k) + "/comm")
		out = append(out, strconv.Itoa(k)+"("+strings.TrimSpace(string(b))+")")
	}
	return out
}

// childrenOf lists the pids whose parent is ppid, zombies included.
func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	want := strconv.Itoa(ppid)
	for _, d := range ents {
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if f := strings.Fields(s[i+1:]); len(f) > 2 && f[1] == want {
			pid, _ := strconv.Atoi(d.Name())
			out = append(out, pid)
		}
	}
	return out
}

// rmdirTree removes a cgroup dir and its children, leaves first; a dir
// gone already is fine.
func rmdirTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	for _, d := range ents {
		if d.IsDir() {
			if err := rmdirTree(filepath.Join(dir, d.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
