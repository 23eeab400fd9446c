package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/internal/testutil"
	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/cli"
	_ "github.com/cri-server/cri-server/oci/nsenter"
)

// TestMain makes this test binary the cri-server binary: "init" is the
// container init, CLI_UNDER_TEST=1 runs the command line.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMain()
	}
	if os.Getenv("CLI_UNDER_TEST") == "1" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	if d := os.Getenv("CLI_INIT_DIGEST"); d != "" {
		// The command line of a binary with an embedded init: this
		// test binary again, under another name.
		self, err := os.ReadFile("/proc/self/exe")
		if err != nil {
			panic(err)
		}
		os.Exit(cli.MainWith(os.Args[1:], cli.Options{Init: self, InitDigest: d}))
	}
	os.Exit(m.Run())
}

func bundle(t *testing.T) (string, string) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	testutil.BusyboxRootfs(t, filepath.Join(dir, "bundle"), []string{"sh", "true", "sleep"})
	return dir, filepath.Join(dir, "bundle")
}

// exitSpec rewrites the bundle's config.json (made by "spec") to run
// "exit 3" without a terminal, in a cgroup of its own, and returns it.
func exitSpec(t *testing.T, b string) *specs.Spec {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sh", "-c", "exit 3"}
	spec.Linux.CgroupsPath = fmt.Sprintf("/cri-server-clitest-%d-%d", os.Getpid(), time.Now().UnixNano())
	raw, _ = json.Marshal(&spec)
	if err := os.WriteFile(filepath.Join(b, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return &spec
}

func ociCmd(t *testing.T, root string, args ...string) (string, int) {
	t.Helper()
	return ociCmdEnv(t, root, "CLI_UNDER_TEST=1", args...)
}

func ociCmdEnv(t *testing.T, root, env string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("/proc/self/exe", append([]string{"--root", root}, args...)...)
	cmd.Env = append(os.Environ(), env)
	// A file, not a pipe: a created container holds its stdio open.
	f, ferr := os.CreateTemp(t.TempDir(), "out")
	if ferr != nil {
		t.Fatal(ferr)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	err := cmd.Run()
	b, _ := os.ReadFile(f.Name())
	out := string(b)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out, code
}

func TestCLILifecycle(t *testing.T) {
	dir, b := bundle(t)
	root := filepath.Join(dir, "state")
	if out, code := ociCmd(t, root, "spec", "--bundle", b); code != 0 {
		t.Fatalf("spec: %d %s", code, out)
	}
	spec := exitSpec(t, b)

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"run exit code", []string{"run", "--bundle", b, "c1"}, 3, ""},
		{"features", []string{"features"}, 0, "SCMP_ACT_ERRNO"},
		{"unknown verb", []string{"frobnicate"}, 2, "unknown verb"},
		{"state unknown", []string{"state", "nope"}, 1, "container nope: not found"},
		{"create", []string{"create", "-b", b, "c2"}, 0, ""},
		{"state created", []string{"state", "c2"}, 0, `"status": "created"`},
		{"delete created", []string{"delete", "c2"}, 1, "it is created, not stopped"},
		{"state still created", []string{"state", "c2"}, 0, `"status": "created"`},
		{"start", []string{"start", "c2"}, 0, ""},
		{"delete", []string{"delete", "--force", "c2"}, 0, ""},
		{"delete again", []string{"delete", "-f", "c2"}, 0, ""},
	}
	for _, tc := range tests {
		out, code := ociCmd(t, root, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d output %q, want %d and %q", tc.name, code, out, tc.code, tc.want)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("state left: %v", ents)
	}
	b2, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b2), dir) {
		t.Errorf("mount leaked under %s", dir)
	}
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if _, err := os.Stat(filepath.Join(h, spec.Linux.CgroupsPath)); err == nil {
			t.Errorf("cgroup leaked: %s%s", h, spec.Linux.CgroupsPath)
		}
	}
}

// TestCLIEmbeddedInit: a command line given its init's content runs its
// containers' init from the cached copy, not from its own binary.
func TestCLIEmbeddedInit(t *testing.T) {
	dir, b := bundle(t)
	root := filepath.Join(dir, "state")
	digest := fmt.Sprintf("clitest-%d", time.Now().UnixNano())
	env := "CLI_INIT_DIGEST=" + digest
	if out, code := ociCmdEnv(t, root, env, "spec", "--bundle", b); code != 0 {
		t.Fatalf("spec: %d %s", code, out)
	}
	spec := exitSpec(t, b)

	if out, code := ociCmdEnv(t, root, env, "create", "--bundle", b, "c1"); code != 0 {
		t.Fatalf("create: %d %s", code, out)
	}
	out, _ := ociCmdEnv(t, root, env, "state", "c1")
	var st specs.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("state: %v: %s", err, out)
	}
	// The init's binary, seen through a detached mount: the same file
	// (inode) as the cached one.
	exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", st.Pid))
	if err != nil {
		t.Fatal(err)
	}
	cached, err := os.Stat(filepath.Join(root, ".init", digest))
	if err != nil || !os.SameFile(exe, cached) {
		t.Errorf("init binary is not the cached %s (%v)", digest, err)
	}
	if out, code := ociCmdEnv(t, root, env, "delete", "-f", "c1"); code != 0 {
		t.Errorf("delete: %d %s", code, out)
	}
	if out, code := ociCmdEnv(t, root, env, "run", "--bundle", b, "c2"); code != 3 {
		t.Errorf("run: exit %d %s, want 3", code, out)
	}
	// In a new user namespace, which does not map the cached binary's
	// owner: the init still executes it. Its root is nobody on the host,
	// so the bundle's dirs must let others in.
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	base := uint32(2_000_000 + (os.Getpid()%1000)*65536)
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: 65536}}
	spec.Linux.GIDMappings = spec.Linux.UIDMappings
	raw, _ := json.Marshal(spec)
	os.WriteFile(filepath.Join(b, "config.json"), raw, 0o644)
	if out, code := ociCmdEnv(t, root, env, "run", "--bundle", b, "c3"); code != 3 {
		t.Errorf("run in a user namespace: exit %d %s, want 3", code, out)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != ".init" {
		t.Errorf("state left: %v, want only .init", ents)
	}
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if _, err := os.Stat(filepath.Join(h, spec.Linux.CgroupsPath)); err == nil {
			t.Errorf("cgroup leaked: %s%s", h, spec.Linux.CgroupsPath)
		}
	}
}
