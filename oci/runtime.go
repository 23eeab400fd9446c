package oci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// Config configures a Runtime.
type Config struct {
	StateDir     string // per-container state: StateDir/<id>/ (state.json, exec.fifo)
	InitBinary   string // binary re-executed as the container init; "" = a sealed copy of /proc/self/exe
	CgroupDriver string // "cgroupfs" (default) or "systemd"
	Logger       *slog.Logger
	// NewCgroup builds the cgroup manager of a container from its
	// linux.cgroupsPath; nil means oci/cgroups.New.
	NewCgroup CgroupFactory
}

// Runtime creates and drives containers whose state lives under StateDir.
// It is safe for concurrent use; operations on one container are serialised
// by a flock on the container's state directory, so several processes (the
// daemon, the per-pod monitor, the CLI) can share a StateDir.
type Runtime struct {
	cfg Config
	log *slog.Logger
	exe *os.File // sealed copy of the init binary, kept for the Runtime's life
	// exeImmutable: nobody can write /proc/self/exe, so a fork of this
	// process may serve as a container's init (fastinit_linux.go).
	exeImmutable bool
	newCgroup    CgroupFactory
}

// IO is the stdio of a container's process. A nil file is /dev/null; no other
// caller fd ever reaches the container.
type IO struct {
	Stdin, Stdout, Stderr *os.File
}

// Container is a created container. Only the process that called Create is the
// parent of its init and can Wait for it.
type Container struct {
	ID      string
	Pid     int
	Console *os.File // pty master when process.terminal, else nil
	cmd     *exec.Cmd
	adopted *os.Process // the init forked by the constructor (userns.go) or the fast init, else nil
	plan    *cPlan      // the fast init's plan, in use until the init is reaped
}

// Wait blocks until the container's init exits and returns its status.
func (c *Container) Wait() (ExitStatus, error) {
	if c.adopted != nil {
		st, err := waitAdopted(c.adopted)
		if err == nil {
			c.plan.free()
			c.plan = nil
		}
		return st, err
	}
	return waitCmd(c.cmd)
}

// Process is an extra process executed in a running container.
type Process struct {
	Pid     int
	Console *os.File
	cmd     *exec.Cmd
}

// Wait blocks until the process exits (exec caller only). Every exec'd
// Process must be waited for: the kernel does not let the init of a PID
// namespace finish exiting while a process of that namespace is an
// unreaped zombie, so the container's Wait would block on it.
func (p *Process) Wait() (ExitStatus, error) { return waitCmd(p.cmd) }

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code     int
	Signaled bool
	Signal   unix.Signal
	ExitedAt time.Time
}

// ExitCode is Code, or 128+signal for a process killed by a signal (the shell's
// convention, which the kubelet reports).
func (e ExitStatus) ExitCode() int {
	if e.Signaled {
		return 128 + int(e.Signal)
	}
	return e.Code
}

func waitCmd(cmd *exec.Cmd) (ExitStatus, error) {
	if cmd == nil {
		return ExitStatus{}, errdefs.FailedPrecondition("wait: not the parent of this process")
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return ExitStatus{}, fmt.Errorf("wait process: %w", err)
	}
	return exitStatusOf(cmd.ProcessState.Sys().(syscall.WaitStatus)), nil
}

// exitStatusOf turns a reaped child's wait status into an ExitStatus, now.
func exitStatusOf(ws syscall.WaitStatus) ExitStatus {
	st := ExitStatus{ExitedAt: time.Now()}
	if ws.Signaled() {
		st.Signaled, st.Signal = true, unix.Signal(ws.Signal())
	} else {
		st.Code = ws.ExitStatus()
	}
	return st
}

// New returns a Runtime. It seals a copy of the init binary once, so creating
// a container never copies the binary.
func New(cfg Config) (*Runtime, error) {
	if cfg.StateDir == "" {
		return nil, errdefs.InvalidArgument("new runtime: empty StateDir")
	}
	switch cfg.CgroupDriver {
	case "", "cgroupfs", "systemd":
	default:
		return nil, errdefs.InvalidArgument("new runtime: unknown cgroup driver %q", cfg.CgroupDriver)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger, newCgroup: cfg.NewCgroup}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.newCgroup == nil {
		r.newCgroup = defaultCgroupFactory
	}
	src := cfg.InitBinary
	if src == "" {
		src = "/proc/self/exe"
	}
	exe, err := sealedExe(src)
	if err != nil {
		return nil, err
	}
	r.exe = exe
	r.exeImmutable = selfExeImmutable()
	return r, nil
}

// Close releases the sealed init binary.
func (r *Runtime) Close() error { return r.exe.Close() }

// validID accepts [A-Za-z0-9][A-Za-z0-9_.+-]{0,127}: the id names a
// directory, so no "/" or "..". Hand-written rather than a regexp, whose
// compilation would run in every re-exec'd init.
func validID(id string) error {
	ok := len(id) > 0 && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '+' || c == '-')
	}
	if !ok {
		return errdefs.InvalidArgument("container id %q: must be [A-Za-z0-9][A-Za-z0-9_.+-]{0,127}", id)
	}
	return nil
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("context: %w", err)
	}
	return nil
}
