package oci

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/seccomp"
)

// Exec starts p inside a running container: all its namespaces, its cgroup,
// and the container's seccomp profile. The caller is the process's parent.
//
// Net, UTS, IPC and PID namespaces are joined by the parent on a locked
// thread before the fork; user, cgroup, time and mount namespaces by the
// oci/nsenter constructor in the child before the Go runtime starts (the
// kernel refuses user, time and mount to a multithreaded process; see
// nsPlan for cgroup).
func (r *Runtime) Exec(ctx context.Context, id string, p *specs.Process, stdio IO) (*Process, error) {
	if p == nil || len(p.Args) == 0 {
		return nil, errdefs.InvalidArgument("process.args: empty")
	}
	if err := validateProcess(p); err != nil {
		return nil, err
	}
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	if s := r.status(st); s != specs.StateRunning {
		return nil, errdefs.FailedPrecondition("exec in container %s: it is %s", id, s)
	}
	if err := checkCapsHeld(p, st.Spec.Linux); err != nil {
		return nil, err
	}
	plan := &nsPlan{}
	self := strconv.Itoa(st.Pid)
	for _, ns := range st.Spec.Linux.Namespaces {
		plan.add(nsJoin{ns.Type, "/proc/" + self + "/ns/" + procNsName[ns.Type]})
	}
	var bpf []byte
	var bpfFlags uint
	if sc := st.Spec.Linux.Seccomp; sc != nil {
		if bpf, bpfFlags, err = seccomp.CompileCached(r.seccompCacheDir(), sc); err != nil {
			return nil, err
		}
	}
	mgr, err := r.newCgroup(st.CgroupsPath)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	cmd, parent, err := r.initCmd("", plan, st.Spec.Linux, stdio)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	cmd.SysProcAttr.Cloneflags = 0
	join, err := joinAtFork(mgr, cmd)
	if err != nil {
		r.closeChildFiles(cmd)
		return nil, fmt.Errorf("open cgroup of %s: %w", id, err)
	}
	err = startIn(plan.thread, cmd.Start)
	r.closeChildFiles(cmd)
	join.Close()
	if err != nil {
		return nil, fmt.Errorf("start exec: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	if err := applyUnlessJoined(mgr, join, cmd.Process.Pid); err != nil {
		return nil, err
	}
	if err := setOOMScoreAdj(cmd.Process.Pid, p.OOMScoreAdj); err != nil {
		return nil, err
	}
	conn := parentConn(parent)
	cfg := &initConfig{Exec: true, ID: id, Spec: st.Spec, Process: p, Seccomp: bpf, SeccompFlags: bpfFlags}
	if !hasNamespace(st.Spec.Linux, specs.MountNamespace) {
		// No mount namespace to join: the container's root is its init's
		// chroot (enterRootNoMountNS), which the process enters the same way.
		cfg.Rootfs = "/proc/" + self + "/root"
	}
	t0 := time.Now()
	console, _, err := r.driveInit(ctx, conn, cfg, true, st)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	ok = true
	r.log.Info("process executed", "container", id, "pid", cmd.Process.Pid, "took", time.Since(t0))
	return &Process{Pid: cmd.Process.Pid, Console: console, cmd: cmd}, nil
}

// execInit is the init side of Exec: we are already in every namespace.
func execInit(conn syncConn, cfg *initConfig) error {
	if os.Getenv(nsenterEnv) != "" {
		return fmt.Errorf("exec: oci/nsenter is not linked into this binary")
	}
	p := cfg.Process
	if cfg.Rootfs != "" {
		if err := unix.Chroot(cfg.Rootfs); err != nil {
			return fmt.Errorf("chroot %s: %w", cfg.Rootfs, err)
		}
	}
	if err := prepareProcess(conn, p); err != nil {
		return err
	}
	path, env, err := lookExec(p)
	if err != nil {
		return err
	}
	if err := conn.send(&syncMsg{Type: msgReady}); err != nil {
		return err
	}
	return finalize(p, cfg, path, env)
}
