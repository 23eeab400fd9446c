package oci_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/internal/testutil"
	"github.com/cri-server/cri-server/oci"
	_ "github.com/cri-server/cri-server/oci/nsenter"
)

// TestMain dispatches the re-exec: the runtime runs this test binary as the
// container init, as cmd/cri-server does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMain()
	}
	// The fast init forks the runtime's process, which must then be
	// executed from a file nobody can write (as the shim is).
	testutil.ReexecReadOnly()
	os.Exit(m.Run())
}

var applets = []string{"sh", "true", "false", "cat", "ls", "mkdir", "sleep", "grep", "readlink",
	"hostname", "echo", "id", "stat", "touch", "wc", "env", "pwd", "head", "uname"}

// busyboxRootfs builds a rootfs from Debian's dynamic busybox and its libs.
func busyboxRootfs(t testing.TB, dir string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	return testutil.BusyboxRootfs(t, dir, applets)
}

func must(t testing.TB, err error) { t.Helper(); testutil.Must(t, err) }

var allCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// baseSpec is the spec of `runc spec` with its defaults.
func baseSpec(rootfs string, args ...string) *specs.Spec {
	caps := &specs.LinuxCapabilities{Bounding: allCaps, Effective: allCaps, Permitted: allCaps}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Args: args, Cwd: "/", Env: []string{"PATH=/bin"}, Capabilities: caps,
			NoNewPrivileges: true,
		},
		Hostname: "ctr",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces:    []specs.LinuxNamespace{{Type: "pid"}, {Type: "network"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "cgroup"}},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

type env struct {
	t   testing.TB
	dir string
	rt  *oci.Runtime
	cg  string
}

func newEnv(t testing.TB) *env {
	dir := t.TempDir()
	rt, err := oci.New(oci.Config{StateDir: filepath.Join(dir, "state")})
	must(t, err)
	e := &env{t: t, dir: dir, rt: rt, cg: fmt.Sprintf("/cri-server-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { e.checkLeaks(); rt.Close() })
	return e
}

// checkLeaks fails the test if a mount under the temp dir, a cgroup of ours or
// a container state remains.
func (e *env) checkLeaks() {
	// The parent of the test's cgroups is ours; its leaves must be gone.
	// Every hierarchy (v1 controllers and the v2 "unified" one).
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if err := os.Remove(filepath.Join(h, e.cg)); err != nil && !os.IsNotExist(err) {
			e.t.Errorf("cgroup leaked under %s%s: %v", h, e.cg, err)
		}
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), e.dir) {
		e.t.Errorf("mount leaked under %s", e.dir)
	}
	if kids := children(); len(kids) > 0 {
		e.t.Errorf("child processes left: %v", kids)
	}
	ids, _ := e.rt.List()
	if len(ids) > 0 {
		e.t.Errorf("containers left: %v", ids)
	}
}

// run creates, starts and waits a container, returning its output.
func (e *env) run(id string, spec *specs.Spec) (string, oci.ExitStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec.Linux.CgroupsPath = e.cg + "/" + id
	r, w, err := os.Pipe()
	must(e.t, err)
	defer r.Close()
	c, err := e.rt.Create(ctx, id, spec, oci.IO{Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		return "", oci.ExitStatus{}, err
	}
	defer e.rt.Delete(ctx, id, true)
	must(e.t, e.rt.Start(ctx, id))
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { out.ReadFrom(r); close(done) }()
	st, err := c.Wait()
	must(e.t, err)
	<-done
	must(e.t, e.rt.Delete(ctx, id, false))
	return out.String(), st, nil
}

func IOnull() oci.IO { return oci.IO{} }

// children lists the processes (zombies included) whose parent is this test.
func children() []string { return testutil.Children() }

// bothInits runs fn with the fast init (oci's fastinit.c, which the
// specs of these tests take) and with the Go init (GoInitEnv=1): each
// must hold what the test checks.
func bothInits(t *testing.T, fn func(t *testing.T)) {
	for _, init := range []string{"c", "go"} {
		t.Run("init="+init, func(t *testing.T) {
			if init == "go" {
				t.Setenv(oci.GoInitEnv, "1")
			}
			fn(t)
		})
	}
}
