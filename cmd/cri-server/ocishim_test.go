package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/internal/testutil"
)

// builtBinary is hack/build.sh's cri-server (hack/test.sh builds it before
// the tests): the hand-over to the shim exists only with the shim embedded.
func builtBinary(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	bin, _ := filepath.Abs("../../_output/bin/cri-server")
	_, derr := os.Stat("cri-server-shim.digest")
	if _, err := os.Stat(bin); err != nil || derr != nil {
		t.Skip("no hack/build.sh output: run hack/build.sh first")
	}
	return bin
}

// TestOCIHandsOverToShim: `cri-server oci` runs the cached shim (its
// constructor execs it before the Go runtime starts) once a first run has
// cached it, wherever the global flags put --root.
func TestOCIHandsOverToShim(t *testing.T) {
	bin := builtBinary(t)
	digest, _ := os.ReadFile("cri-server-shim.digest")
	b := busyboxBundle(t, []string{"sleep", "0.3"})
	tests := []struct {
		name      string
		globals   func(root string) []string
		prepare   func(root string) // before the run
		wantShim  bool
		wantCache bool
	}{
		{name: "first run caches, runs itself", globals: func(r string) []string { return []string{"--root", r} }, wantCache: true},
		{name: "--root R", globals: func(r string) []string { return []string{"--root", r} }, wantShim: true, wantCache: true},
		{name: "--root=R", globals: func(r string) []string { return []string{"--root=" + r} }, wantShim: true, wantCache: true},
		{name: "-root R after --log", globals: func(r string) []string { return []string{"--log", filepath.Join(r, "..", "log"), "-root", r} }, wantShim: true, wantCache: true},
		{name: "opted out", globals: func(r string) []string { return []string{"--root", r} }, wantCache: true},
		// A root others can write to could hold anything: not trusted,
		// neither by the constructor nor by the Go command line.
		{name: "root others may write", globals: func(r string) []string { return []string{"--root", r} }, wantCache: true,
			prepare: func(r string) { os.Chmod(r, 0o777) }},
		{name: "cached copy others may write", globals: func(r string) []string { return []string{"--root", r} }, wantCache: true,
			prepare: func(r string) {
				os.Chmod(r, 0o711)
				os.Chmod(filepath.Join(r, ".init", string(digest)), 0o522)
			}},
		{name: "replaced by the previous run", globals: func(r string) []string { return []string{"--root", r} }, wantShim: true, wantCache: true},
	}
	root := filepath.Join(t.TempDir(), "state")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(root)
			}
			args := append(append([]string{"oci"}, tc.globals(root)...), "run", "-b", b, fmt.Sprintf("c%d", i))
			cmd := exec.Command(bin, args...)
			if tc.name == "opted out" {
				cmd.Env = append(os.Environ(), "CRI_SERVER_OCI_IN_PROCESS=1")
			}
			out := &strings.Builder{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The container sleeps: time to see what the command line runs.
			// Until it has exec'd the shim, or has run 0.1 s as itself.
			// The shim runs from a detached read-only mount of the cached
			// copy, whose path reads "/": it is known by its inode.
			cached := filepath.Join(root, ".init", string(digest))
			exe, gotShim := "", false
			for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				p := fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)
				if l, err := os.Readlink(p); err == nil {
					exe = l
				}
				if exe != "" && exe != bin {
					a, aerr := os.Stat(p)
					c, cerr := os.Stat(cached)
					gotShim = aerr == nil && cerr == nil && os.SameFile(a, c)
					// Read-only, so that the shim may fork container inits
					// (oci's fast init): nothing can write it.
					var fs unix.Statfs_t
					if gotShim && (unix.Statfs(p, &fs) != nil || fs.Flags&unix.ST_RDONLY == 0) {
						t.Errorf("the shim runs from a writable mount (flags %#x)", fs.Flags)
					}
					break
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("%v: %v: %s", args, err, out)
			}
			if gotShim != tc.wantShim {
				t.Errorf("command line ran %s, want the cached shim: %v", exe, tc.wantShim)
			}
			if _, err := os.Stat(cached); (err == nil) != tc.wantCache {
				t.Errorf("cached shim: %v, want it: %v", err, tc.wantCache)
			}
		})
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Errorf("state left: %v, want only .init", ents)
	}
}

// busyboxBundle makes a bundle of Debian's busybox running args, with its
// own cgroup, which the test checks is gone at the end.
func busyboxBundle(t *testing.T, args []string) string {
	t.Helper()
	b := filepath.Join(t.TempDir(), "bundle")
	testutil.BusyboxRootfs(t, b, args[:1])
	if out, err := exec.Command("runc", "spec", "--bundle", b).CombinedOutput(); err != nil {
		t.Skipf("runc spec: %v: %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(b, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	cg := fmt.Sprintf("/cri-server-shimtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	proc := spec["process"].(map[string]any)
	proc["terminal"], proc["args"] = false, args
	spec["linux"].(map[string]any)["cgroupsPath"] = cg
	raw, _ = json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(b, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
		for _, h := range hiers {
			if _, err := os.Stat(filepath.Join(h, cg)); err == nil {
				t.Errorf("cgroup leaked: %s%s", h, cg)
			}
		}
	})
	return b
}
