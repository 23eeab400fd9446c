package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/cgroups"
	"github.com/cri-server/cri-server/oci/seccomp"
)

// Create sets up a container whose init waits, before exec, for Start. The
// calling process is the init's parent and must reap it (Container.Wait).
func (r *Runtime) Create(ctx context.Context, id string, spec *specs.Spec, io IO) (*Container, error) {
	return r.CreateBundle(ctx, id, "", spec, io)
}

// CreateBundle is Create recording the bundle directory (reported by State;
// a relative root.path is resolved against it).
func (r *Runtime) CreateBundle(ctx context.Context, id, bundle string, spec *specs.Spec, stdio IO) (c *Container, retErr error) {
	return r.createBundle(ctx, id, bundle, spec, nil, stdio)
}

// CreateBundleRaw is CreateBundle for a spec decoded (DecodeSpec) from
// raw, a bundle's config.json, and not changed since: the state keeps raw
// as it is instead of encoding the spec again, which costs a short-lived
// caller (the command line) the encoders of the spec's whole type graph,
// ~0.4 ms.
func (r *Runtime) CreateBundleRaw(ctx context.Context, id, bundle string, spec *specs.Spec, raw []byte, stdio IO) (*Container, error) {
	return r.createBundle(ctx, id, bundle, spec, raw, stdio)
}

func (r *Runtime) createBundle(ctx context.Context, id, bundle string, spec *specs.Spec, raw []byte, stdio IO) (c *Container, retErr error) {
	ph := phases{t0: time.Now()}
	in, err := r.createInputs(id, bundle, spec)
	if err != nil {
		return nil, err
	}
	in.raw = raw
	plan, rootfs := in.plan, in.rootfs
	if l := spec.Linux; !hasNamespace(l, specs.MountNamespace) && len(spec.Mounts)+len(l.MaskedPaths)+len(l.ReadonlyPaths) > 0 {
		r.log.Warn("no mount namespace: the container is chrooted into its root and its mounts, masked and read-only paths are not applied",
			"container", id, "mounts", len(spec.Mounts), "maskedPaths", len(l.MaskedPaths), "readonlyPaths", len(l.ReadonlyPaths))
	}
	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, errdefs.AlreadyExists("container %s", id)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	undo := []func(){func() { os.RemoveAll(dir) }}
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := r.mkfifo(dir, spec); err != nil {
		return nil, err
	}
	cgPath := r.cgroupsPathFor(id, spec)
	// Recorded ahead of the cgroup: a create killed before its state is
	// saved (its monitor killed -9) leaves this for Delete, which would not
	// find the cgroup otherwise.
	if err := os.WriteFile(filepath.Join(dir, cgroupFile), []byte(cgPath), 0o600); err != nil {
		return nil, fmt.Errorf("record cgroup path: %w", err)
	}
	mgr, err := r.newCgroup(cgPath)
	if err != nil {
		return nil, fmt.Errorf("create cgroup manager: %w", err)
	}
	undo = append(undo, func() { _ = mgr.Destroy() })
	ph.mark(&ph.prep)

	if why := r.fastRefusal(spec, plan); why == "" {
		return r.createFast(ctx, id, bundle, spec, stdio, in, dir, cgPath, mgr, &ph, &undo)
	} else {
		r.log.Debug("container init in Go", "container", id, "why", why)
	}
	cmd, parent, err := r.initCmd(dir, plan, spec.Linux, stdio)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	ho, err := r.handOver(cmd, plan, spec, rootfs)
	if err != nil {
		r.closeChildFiles(cmd)
		return nil, err
	}
	defer ho.close()
	if err := r.startInit(cmd, plan, mgr, spec.Process, &ph); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cgPath, err)
	}
	pid := cmd.Process.Pid
	undo = append(undo, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()

	st := &containerState{
		ID: id, Pid: pid, PidStart: pidStart(pid), Bundle: bundle, Rootfs: rootfs,
		Created: time.Now().UTC(), CgroupsPath: cgPath, Spec: spec, Annotations: spec.Annotations, raw: in.raw,
	}
	conn := parentConn(parent)
	cfg := &initConfig{ID: id, Spec: spec, Process: spec.Process, Rootfs: rootfs,
		Seccomp: in.bpf, SeccompFlags: in.bpfFlags, CgroupPaths: mgr.Paths(), MountFds: ho.mountFds, RootFromCwd: ho.rootFromCwd}
	if plan.cloneFlags&unix.CLONE_NEWNS != 0 && hasCgroupMount(spec) {
		// Read while the init starts up; cached by a long-lived parent.
		if cfg.CgroupMounts, err = cgroupHierarchies(); err != nil {
			return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
		}
	}
	console, it, err := r.driveInit(ctx, conn, cfg, true, st)
	if st.Pid != pid { // the constructor forked the init into its PID namespace
		undo = append(undo, func() { killAdopted(st.Pid) })
		err = r.settleAdopted(err, cmd, mgr, st.Pid, spec.Process, console)
	}
	if err != nil {
		return nil, err
	}
	pid = st.Pid
	ph.init(it)
	return r.finishCreate(id, pid, st, mgr, spec, console, &ph, func(c *Container) {
		nc := newContainer(id, pid, console, cmd)
		c.cmd, c.adopted = nc.cmd, nc.adopted
	})
}

// finishCreate sets the cgroup limits, saves the state and returns the
// created container (set gives it its process). On error it closes console.
func (r *Runtime) finishCreate(id string, pid int, st *containerState, mgr CgroupManager, spec *specs.Spec, console *os.File, ph *phases, set func(*Container)) (*Container, error) {
	// Limits go on once the init is set up: its Go runtime has made its
	// threads by now, and a small pids.max would otherwise kill it (runc
	// sets them at the same point).
	if spec.Linux.Resources != nil {
		if err := mgr.Set(withDefaultDeviceRules(spec.Linux.Resources, spec.Linux.Devices)); err != nil {
			if console != nil {
				console.Close()
			}
			return nil, fmt.Errorf("set resources: %w", err)
		}
	}
	ph.mark(&ph.limits)
	if md, ok := mgr.(cgroups.MadeDirs); ok {
		st.CgroupMade = md.Made()
	}
	if err := r.save(st); err != nil {
		if console != nil {
			console.Close()
		}
		return nil, err
	}
	ph.mark(&ph.save)
	r.log.Info("container created", append([]any{"container", id, "pid", pid}, ph.attrs()...)...)
	c := &Container{ID: id, Pid: pid, Console: console}
	set(c)
	return c, nil
}

// createInputs are what a create derives from its arguments before it
// changes anything.
type createInputs struct {
	plan     *nsPlan
	rootfs   string // absolute
	bpf      []byte // compiled seccomp program, nil without one
	bpfFlags uint
	raw      []byte // the spec's JSON as read (CreateBundleRaw), nil if not given
}

func (r *Runtime) createInputs(id, bundle string, spec *specs.Spec) (*createInputs, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if err := validateSpec(spec); err != nil {
		return nil, err
	}
	plan, err := planNamespaces(spec.Linux)
	if err != nil {
		return nil, err
	}
	in := &createInputs{plan: plan, rootfs: spec.Root.Path}
	if !filepath.IsAbs(in.rootfs) {
		in.rootfs = filepath.Join(bundle, in.rootfs)
	}
	if in.rootfs, err = filepath.Abs(in.rootfs); err != nil {
		return nil, errdefs.InvalidArgument("root.path: %v", err)
	}
	if fi, err := os.Stat(in.rootfs); err != nil || !fi.IsDir() {
		return nil, errdefs.InvalidArgument("root.path %s: not a directory", in.rootfs)
	}
	if spec.Linux.Seccomp != nil {
		if in.bpf, in.bpfFlags, err = seccomp.CompileCached(r.seccompCacheDir(), spec.Linux.Seccomp); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// startInit starts the init inside mgr's cgroup (see joinAtFork) with its
// oom_score_adj. On error no child is left running.
func (r *Runtime) startInit(cmd *exec.Cmd, plan *nsPlan, mgr CgroupManager, p *specs.Process, ph *phases) error {
	join, err := joinAtFork(mgr, cmd)
	if err != nil {
		r.closeChildFiles(cmd)
		return fmt.Errorf("create: %w", err)
	}
	if join != nil && cmd.SysProcAttr.Cloneflags&unix.CLONE_NEWCGROUP != 0 {
		// The child enters its cgroup only once running: its new cgroup
		// namespace must come after, to be rooted there (runc's order).
		cmd.SysProcAttr.Cloneflags &^= unix.CLONE_NEWCGROUP
		cmd.Env = append(cmd.Env, newCgroupNSEnv+"=1")
	}
	ph.mark(&ph.cgroup)
	err = startIn(plan.thread, cmd.Start)
	r.closeChildFiles(cmd)
	join.Close()
	if err != nil {
		return fmt.Errorf("start init: %w", err)
	}
	ph.mark(&ph.clone)
	err = applyUnlessJoined(mgr, join, cmd.Process.Pid)
	if err == nil {
		err = setOOMScoreAdj(cmd.Process.Pid, p.OOMScoreAdj)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	ph.mark(&ph.cgroup)
	return nil
}

// errInitExited: the init closed its sync socket without a word (it died).
var errInitExited = errors.New("container init exited during setup")

// driveInit sends the config and serves the init until it is ready; it
// returns the pty master (process.terminal) and the init's milestones.
func (r *Runtime) driveInit(ctx context.Context, conn syncConn, cfg *initConfig, send bool, st *containerState) (console *os.File, times *initTimes, err error) {
	defer func() {
		if err != nil && console != nil {
			console.Close()
			console = nil
		}
	}()
	// An init that failed before reading (the nsenter constructor) has
	// closed its end: its error frame, if any, is still ours to read.
	var sendErr error
	if send {
		sendErr = conn.send(&syncMsg{Type: msgConfig, Config: cfg})
	}
	for {
		m, err := conn.recv()
		if err != nil {
			if cerr := ctxErr(ctx); cerr != nil {
				return console, nil, cerr
			}
			if sendErr != nil {
				return console, nil, sendErr
			}
			if err == io.EOF || errors.Is(err, unix.ECONNRESET) {
				return console, nil, errInitExited
			}
			return console, nil, fmt.Errorf("read from init: %w", err)
		}
		switch m.Type {
		case msgError:
			if m.Error == nil {
				return console, nil, errors.New("init failed")
			}
			return console, nil, m.Error.toError()
		case msgPid:
			if err := r.adoptInit(st, m.Pid); err != nil {
				return console, nil, err
			}
		case msgConsole:
			if console, err = conn.recvFd(); err != nil {
				return console, nil, err
			}
		case msgHooks:
			if err := r.createHooks(ctx, conn, cfg, st); err != nil {
				return console, nil, err
			}
		case msgReady:
			if sendErr != nil {
				return console, nil, sendErr
			}
			return console, m.Times, nil
		default:
			return console, nil, fmt.Errorf("unexpected %s message from init", m.Type)
		}
	}
}

// createHooks runs the hooks due in the runtime's namespaces once the
// mounts are done, then releases the init, which runs the createContainer
// hooks itself, in the container's namespaces before pivot_root
// (runtime-spec; runc does the same).
func (r *Runtime) createHooks(ctx context.Context, conn syncConn, cfg *initConfig, st *containerState) error {
	// "created": the runtime-spec's status once the environment is made
	// (lifecycle step 2), before the user's program runs; crun passes it,
	// runc 1.1 "creating".
	s := r.ociState(st)
	s.Status = specs.StateCreated
	if h := cfg.Spec.Hooks; h != nil {
		// prestart is deprecated but still written by older tools; it
		// runs where createRuntime does, just before it (runc).
		if err := runHooks(ctx, "prestart", h.Prestart, s); err != nil { //nolint:staticcheck
			return err
		}
		if err := runHooks(ctx, "createRuntime", h.CreateRuntime, s); err != nil {
			return err
		}
	}
	return conn.send(&syncMsg{Type: msgHooksDone, State: s})
}

// initCmd prepares the re-exec of the init. Only stdio, the sync socket and the
// state dir reach the child; everything else we hold is close-on-exec.
func (r *Runtime) initCmd(dir string, plan *nsPlan, l *specs.Linux, stdio IO) (*exec.Cmd, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("create sync socket: %w", err)
	}
	// The parent's end non-blocking, so that os.NewFile makes it pollable
	// (parentConn); the init's end, another open file, stays blocking.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("create sync socket: %w", err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child")
	cmd := &exec.Cmd{
		Args: []string{"cri-server", "init"},
		// One P: the init is a sequence on one locked thread, and every
		// runtime thread more is one more to create at start and to end
		// at the exec (~0.25 ms of its CPU). InitMain unsets it, so a
		// startContainer hook does not inherit it.
		Env:        []string{initMaxProcsEnv + "=1"},
		Stdin:      stdio.Stdin,
		Stdout:     stdio.Stdout,
		Stderr:     stdio.Stderr,
		ExtraFiles: []*os.File{child},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: plan.cloneFlags,
			Setsid:     true,
		},
	}
	if dir != "" {
		sd, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			parent.Close()
			child.Close()
			return nil, nil, fmt.Errorf("open state dir: %w", err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, sd)
	}
	// The sealed binary reaches the child at a position of ours: a number
	// of the parent's could be overwritten by the ExtraFiles dup2s before
	// the exec. InitMain marks it close-on-exec with the rest.
	cmd.Path = "/proc/self/fd/" + strconv.Itoa(3+len(cmd.ExtraFiles))
	cmd.ExtraFiles = append(cmd.ExtraFiles, r.exe)
	if gd := os.Getenv("GODEBUG"); gd != "" {
		cmd.Env = append(cmd.Env, "GODEBUG="+gd)
	}
	if len(plan.nsenter) > 0 {
		cmd.Env = append(cmd.Env, nsenterEnv+"="+nsenterValue(plan.nsenter))
	}
	if plan.unshare != 0 {
		cmd.Env = append(cmd.Env, unshareEnv+"="+strconv.FormatUint(uint64(plan.unshare), 10))
	}
	if plan.timeOffsets != "" {
		cmd.Env = append(cmd.Env, timensOffsetsEnv+"="+plan.timeOffsets)
	}
	if plan.cloneFlags&unix.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = idMaps(l.UIDMappings)
		cmd.SysProcAttr.GidMappings = idMaps(l.GIDMappings)
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
		// We enter the new user namespace as the host's root, which the
		// mapping does not name: become the namespace's root before the exec,
		// or the init has no capabilities there.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	return cmd, parent, nil
}

// closeChildFiles closes our copies of what only the child needs: all the
// ExtraFiles but the sealed binary, which serves every container.
func (r *Runtime) closeChildFiles(cmd *exec.Cmd) {
	for _, f := range cmd.ExtraFiles {
		if f != r.exe {
			f.Close()
		}
	}
}

// mkfifo makes the create/start barrier, owned by the container's root so an
// init in a user namespace can open it.
func (r *Runtime) mkfifo(dir string, spec *specs.Spec) error {
	p := filepath.Join(dir, fifoName)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		return fmt.Errorf("create exec fifo: %w", err)
	}
	uid, _ := hostID(spec.Linux.UIDMappings, 0)
	gid, _ := hostID(spec.Linux.GIDMappings, 0)
	if uid > 0 || gid > 0 {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("chown exec fifo: %w", err)
		}
	}
	return nil
}

// setOOMScoreAdj writes the score from the parent: a refusal (no
// CAP_SYS_RESOURCE to go below our own) becomes a PrivilegeError the CRI
// layer can clamp, not a bare setup failure.
func setOOMScoreAdj(pid int, adj *int) error {
	if adj == nil {
		return nil
	}
	p := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	err := os.WriteFile(p, []byte(strconv.Itoa(*adj)), 0)
	if err == nil {
		return nil
	}
	own := int64(0)
	if b, rerr := os.ReadFile("/proc/self/oom_score_adj"); rerr == nil {
		own, _ = strconv.ParseInt(string(trimNL(b)), 10, 64)
	}
	if errors.Is(err, os.ErrPermission) {
		return &PrivilegeError{Field: "process.oomScoreAdj", Requested: int64(*adj), Allowed: own, Err: err}
	}
	return errdefs.InvalidArgument("process.oomScoreAdj %d: %v", *adj, err)
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
