// Package monitortest is a stand-in executor for tests of the monitor and
// the server before the real executor (oci) is linked: it runs the spec's
// args as a plain host process with os/exec. No namespaces, no cgroups.
// Tests only: nothing outside _test.go files may import it.
package monitortest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/monitor"
)

// OOMFile, in OCIStateDir/<id>/, holds the fake OOM kill counter a test
// sets to pretend the kernel OOM-killed the container.
const OOMFile = "oom_kill"

// Files of a container in OCIStateDir/<id>/, as the real executor has them:
// the exec fifo the init waits on until Start, and the init's pid. Like
// the real one, any process can start or kill what another created (the C
// monitor creates in one child and starts in itself).
const (
	fifoFile = "exec.fifo"
	pidFile  = "pid"
	exeFile  = "exe"
)

// Executor runs containers as plain processes.
type Executor struct {
	StateDir string
}

// New is a monitor.NewExecutor.
func New(cfg monitor.Config, _ *slog.Logger) (monitor.Executor, error) {
	return &Executor{StateDir: cfg.OCIStateDir}, nil
}

type proc struct{ cmd *exec.Cmd }

func (p *proc) Pid() int          { return p.cmd.Process.Pid }
func (p *proc) Console() *os.File { return nil }

func (p *proc) Wait() (monitor.ExitStatus, error) {
	err := p.cmd.Wait()
	st := monitor.ExitStatus{ExitedAt: time.Now()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			st.Signaled, st.Signal = true, ws.Signal()
		} else {
			st.Code = ws.ExitStatus()
		}
		err = nil
	}
	return st, err
}

func (e *Executor) dir(id string) string { return filepath.Join(e.StateDir, id) }

// Create starts a shell that waits on the exec fifo, then execs the args:
// the init exists (and can be killed) from create on, as with oci.
func (e *Executor) Create(ctx context.Context, id string, spec *specs.Spec, io monitor.IO) (monitor.Process, error) {
	if len(spec.Process.Args) == 0 {
		return nil, errors.New("no args")
	}
	if strings.HasPrefix(spec.Process.Args[0], "/fail-create") {
		return nil, errors.New("create refused: " + spec.Process.Args[0])
	}
	if err := os.MkdirAll(e.dir(id), 0o700); err != nil {
		return nil, err
	}
	fifo := filepath.Join(e.dir(id), fifoFile)
	os.Remove(fifo)
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, err
	}
	args := append([]string{"-c", `echo > "$0" && exec "$@"`, fifo}, spec.Process.Args...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = spec.Process.Env
	if io.Stdin != nil {
		cmd.Stdin = io.Stdin
	}
	if io.Stdout != nil {
		cmd.Stdout = io.Stdout
	}
	if io.Stderr != nil {
		cmd.Stderr = io.Stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Start fails for a missing binary, as the real one's create does.
	os.WriteFile(filepath.Join(e.dir(id), exeFile), []byte(spec.Process.Args[0]), 0o600)
	if err := os.WriteFile(filepath.Join(e.dir(id), pidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if strings.HasPrefix(spec.Process.Args[0], "/crash-create") {
		// A creator that dies mid-create, its init made: the C monitor
		// runs Create in a helper process, which this ends.
		os.Exit(3)
	}
	return &proc{cmd}, nil
}

func (e *Executor) pid(id string) (int, error) {
	data, err := os.ReadFile(filepath.Join(e.dir(id), pidFile))
	if err != nil {
		return 0, errors.New("no container " + id)
	}
	return strconv.Atoi(string(data))
}

// Start reads the init's byte from the exec fifo, as oci's does.
func (e *Executor) Start(ctx context.Context, id string) error {
	pid, err := e.pid(id)
	if err != nil {
		return err
	}
	if err := e.lookExe(id); err != nil {
		return err
	}
	fifo := filepath.Join(e.dir(id), fifoFile)
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.New("already started")
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		if n > 0 {
			var b [1]byte
			m, _ := unix.Read(fd, b[:])
			if m == 1 {
				os.Remove(fifo)
				return nil
			}
			if m == 0 {
				return errors.New("init exited")
			}
		}
		if unix.Kill(pid, 0) != nil || time.Now().After(deadline) {
			return errors.New("init exited")
		}
	}
}

func (e *Executor) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	pid, err := e.pid(id)
	if err != nil {
		return err
	}
	if all {
		if err := unix.Kill(-pid, sig); err != nil && err != unix.ESRCH {
			return err
		}
		return nil
	}
	return unix.Kill(pid, sig)
}

func (e *Executor) OOMKillCount(ctx context.Context, id string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(e.dir(id), OOMFile))
	if err != nil {
		return 0, nil
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
}

// ExecFifo and OOMFile let the C monitor start the container and read its
// OOM counter itself, as with oci.
// A missing binary takes the Go Start, whose error the test checks; so
// do poststart hooks, as with oci (the stand-in runs none).
func (e *Executor) ExecFifo(id string, spec *specs.Spec) string {
	if e.lookExe(id) != nil || (spec.Hooks != nil && len(spec.Hooks.Poststart) > 0) {
		return ""
	}
	return filepath.Join(e.dir(id), fifoFile)
}

func (e *Executor) lookExe(id string) error {
	data, err := os.ReadFile(filepath.Join(e.dir(id), exeFile))
	if err != nil {
		return errors.New("no container " + id)
	}
	_, err = exec.LookPath(string(data))
	return err
}

func (e *Executor) OOMFile(id string, _ int) string { return filepath.Join(e.dir(id), OOMFile) }
