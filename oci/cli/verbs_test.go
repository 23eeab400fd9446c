package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The verbs of a running container, in the order a user (or runtime-tools)
// drives them, with runc's global flags before the verb.
func TestCLIVerbsOnARunningContainer(t *testing.T) {
	dir, b := bundle(t)
	root := filepath.Join(dir, "state")
	logFile := filepath.Join(dir, "log.json")
	spec := specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{Args: []string{"sleep", "100"}, Cwd: "/", Env: []string{"PATH=/bin"}},
		Mounts:  []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
		Linux: &specs.Linux{
			Namespaces:  []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "ipc"}, {Type: "uts"}, {Type: "network"}},
			CgroupsPath: fmt.Sprintf("/cri-server-cliverbs-%d-%d", os.Getpid(), time.Now().UnixNano()),
		},
	}
	raw, _ := json.Marshal(&spec)
	if err := os.WriteFile(filepath.Join(b, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "res.json")
	if err := os.WriteFile(res, []byte(`{"pids":{"limit":33}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "pid")
	cgPids := filepath.Join("/sys/fs/cgroup/pids", spec.Linux.CgroupsPath, "pids.max")
	cgFreezer := filepath.Join("/sys/fs/cgroup/freezer", spec.Linux.CgroupsPath, "freezer.state")
	defer ociCmd(t, root, "delete", "--force", "v1")
	tests := []struct {
		name  string
		args  []string
		code  int
		want  string
		check func(t *testing.T)
	}{
		{name: "create with global flags", args: []string{"--log", logFile, "--log-format", "json", "create", "--bundle", b, "--pid-file", pidFile, "v1"}},
		{name: "start", args: []string{"start", "v1"}},
		{name: "state running", args: []string{"state", "v1"}, want: `"status": "running"`},
		{name: "ps json", args: []string{"ps", "--format", "json", "v1"}, check: func(t *testing.T) {
			pid, _ := os.ReadFile(pidFile)
			if _, err := strconv.Atoi(strings.TrimSpace(string(pid))); err != nil {
				t.Errorf("pid file %q", pid)
			}
		}},
		{name: "exec exit code", args: []string{"exec", "v1", "sh", "-c", "exit 4"}, code: 4},
		{name: "exec env and cwd", args: []string{"exec", "--env", "A=b", "--cwd", "/proc", "v1", "sh", "-c", `test "$A" = b && test "$(pwd)" = /proc`}},
		{name: "exec as a user", args: []string{"exec", "--user", "1000:1000", "v1", "sh", "-c", `while read k v r; do [ "$k" = Uid: ] && [ "$v" = 1000 ] && exit 0; done </proc/self/status; exit 1`}},
		{name: "update pids", args: []string{"update", "--pids-limit", "21", "v1"}, check: func(t *testing.T) { readIs(t, cgPids, "21") }},
		{name: "update from a resources file", args: []string{"update", "--resources", res, "v1"}, check: func(t *testing.T) { readIs(t, cgPids, "33") }},
		{name: "pause", args: []string{"pause", "v1"}, check: func(t *testing.T) { readIs(t, cgFreezer, "FROZEN") }},
		{name: "state paused", args: []string{"state", "v1"}, want: `"status": "paused"`},
		{name: "resume", args: []string{"resume", "v1"}, check: func(t *testing.T) { readIs(t, cgFreezer, "THAWED") }},
		{name: "kill by name", args: []string{"kill", "v1", "KILL"}},
		{name: "state stopped", args: []string{"state", "v1"}, want: `"status": "stopped"`},
		{name: "kill --all a stopped container", args: []string{"kill", "--all", "v1", "9"}},
		{name: "kill a stopped init", args: []string{"kill", "v1", "9"}, code: 1},
		{name: "delete", args: []string{"delete", "v1"}},
		{name: "state gone", args: []string{"state", "v1"}, code: 1},
		{name: "bad signal", args: []string{"kill", "v1", "SIGNOPE"}, code: 1},
		{name: "systemd-cgroup flag accepted", args: []string{"--systemd-cgroup", "state", "v1"}, code: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := ociCmd(t, root, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d output %q, want %d and %q", code, out, tc.code, tc.want)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), `"msg"`) {
		t.Errorf("--log --log-format json: %v %q", err, b)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("state left: %v", ents)
	}
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if _, err := os.Stat(filepath.Join(h, spec.Linux.CgroupsPath)); err == nil {
			t.Errorf("cgroup leaked: %s%s", h, spec.Linux.CgroupsPath)
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), dir) {
		t.Errorf("mount leaked under %s", dir)
	}
}

func readIs(t *testing.T, p, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q (%v), want %q", p, b, err, want)
		}
	}
}
