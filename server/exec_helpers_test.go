package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/internal/testutil"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/oci"
	// Exec joins the container's mount namespace before the Go runtime
	// starts: the test binary, re-executed as init, must link it.
	_ "github.com/cri-server/cri-server/oci/nsenter"
	"github.com/cri-server/cri-server/store"
)

// realEnv is a Server whose containers run on the real executor, created
// by the test itself (it is their parent, in place of a monitor): what
// exec and attach need is a running container and its record.
type realEnv struct {
	t   testing.TB
	s   *Server
	rt  *oci.Runtime
	dir string
	cg  string
	ctr map[string]*oci.Container
}

func newRealEnv(t testing.TB) *realEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: containers create namespaces, mounts and cgroups")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox for the container's rootfs")
	}
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	db, err := store.Open(filepath.Join(cfg.Root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), db: db,
		podDeps: &fakePods{pods: map[string]*podInfo{}}, imageDeps: &fakeImages{mounted: map[string]string{}}}
	rt, err := oci.New(oci.Config{StateDir: s.ociStateDir()})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	s.runtime = rt
	if err := s.initContainers(db); err != nil {
		db.Close()
		t.Fatal(err)
	}
	e := &realEnv{t: t, s: s, rt: rt, dir: dir, ctr: map[string]*oci.Container{},
		cg: fmt.Sprintf("/cri-server-exec-test-%d-%s", os.Getpid(), randHex(4))}
	t.Cleanup(e.cleanup)
	return e
}

var execApplets = []string{"sh", "true", "false", "cat", "sleep", "echo", "head", "yes", "ps", "wc", "id", "mkdir", "env", "pwd", "tr", "stty"}

// rootfs builds a busybox root filesystem (once per env).
func (e *realEnv) rootfs() string {
	return testutil.BusyboxRootfs(e.t, e.dir, execApplets, "work")
}

func mustDo(t testing.TB, err error) { t.Helper(); testutil.Must(t, err) }

// Capabilities of the test containers: a few of the default set dropped.
var execTestCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"}

// spec is a container spec as the CRI builds it: own namespaces, dropped
// capabilities, no_new_privs, and a seccomp profile that refuses mkdir.
func (e *realEnv) spec(id string, args ...string) *specs.Spec {
	caps := &specs.LinuxCapabilities{Bounding: execTestCaps, Effective: execTestCaps, Permitted: execTestCaps}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: e.rootfs()},
		Process: &specs.Process{
			Args: args, Cwd: "/work", Env: []string{"PATH=/bin", "FROM_SPEC=yes"}, Capabilities: caps,
			NoNewPrivileges: true,
		},
		Hostname: "ctr",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: e.cg + "/" + id,
			Namespaces:  []specs.LinuxNamespace{{Type: "pid"}, {Type: "network"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno},
			}},
		},
	}
}

// run starts a container running args, with its record RUNNING in the
// server, and returns its id.
func (e *realEnv) run(cfg *runtime.ContainerConfig, args ...string) string {
	t := e.t
	t.Helper()
	id := "exec" + randHex(8)
	bundle := filepath.Join(e.s.cfg.State, "containers", id)
	mustDo(t, os.MkdirAll(bundle, 0o700))
	sp := e.spec(id, args...)
	b, err := json.Marshal(sp)
	mustDo(t, err)
	mustDo(t, os.WriteFile(filepath.Join(bundle, monitor.SpecFile), b, 0o600))
	ctx := context.Background()
	c, err := e.rt.Create(ctx, id, sp, oci.IO{})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	e.ctr[id] = c
	mustDo(t, e.rt.Start(ctx, id))
	if cfg == nil {
		cfg = &runtime.ContainerConfig{}
	}
	rec := &containerRecord{ID: id, Name: id, PodID: "pod1", Metadata: &runtime.ContainerMetadata{Name: id},
		Bundle: bundle, Status: containerStatus{State: runtime.ContainerState_CONTAINER_RUNNING, Pid: c.Pid,
			CreatedAt: time.Now(), StartedAt: time.Now()}}
	mustDo(t, e.s.ctrs.add(rec))
	return id
}

// pidnsProcs lists the live processes in the pid namespace of container
// id. Zombies are left out: an orphan is reparented to the container's
// init, and reaping it is that init's job (the pod's, with a shared pid
// namespace), as with every runtime.
func (e *realEnv) pidnsProcs(id string) []string {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", e.ctr[id].Pid))
	mustDo(e.t, err)
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		st, _ := os.ReadFile("/proc/" + d.Name() + "/stat")
		if i := strings.LastIndexByte(string(st), ')'); i < 0 || strings.HasPrefix(string(st[i+1:]), " Z") {
			continue
		}
		if ns, err := os.Readlink("/proc/" + d.Name() + "/ns/pid"); err == nil && ns == want {
			cmd, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			out = append(out, d.Name()+":"+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

func (e *realEnv) cleanup() {
	ctx := context.Background()
	for id, c := range e.ctr {
		e.rt.Kill(ctx, id, 9, true)
		c.Wait()
		if err := e.rt.Delete(ctx, id, true); err != nil {
			e.t.Errorf("delete container %s: %v", id, err)
		}
	}
	e.s.Close()
	e.rt.Close()
	for _, h := range must1(filepath.Glob("/sys/fs/cgroup/*")) {
		if err := os.Remove(filepath.Join(h, e.cg)); err != nil && !os.IsNotExist(err) {
			e.t.Errorf("cgroup leaked under %s%s: %v", h, e.cg, err)
		}
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), e.dir) {
		e.t.Errorf("mount leaked under %s", e.dir)
	}
	if kids := childProcs(); len(kids) > 0 {
		e.t.Errorf("child processes left: %v", kids)
	}
}

func must1[T any](v T, _ error) T { return v }

// childProcs lists the processes (zombies included) whose parent is this
// test binary.
func childProcs() []string { return testutil.Children() }
