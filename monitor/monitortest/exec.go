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
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/monitor"
)

// OOMFile, in OCIStateDir/<id>/, holds the fake OOM kill counter a test
// sets to pretend the kernel OOM-killed the container.
const OOMFile = "oom_kill"

// Executor runs containers as plain processes.
type Executor struct {
	StateDir string
	mu       sync.Mutex
	procs    map[string]*proc
}

// New is a monitor.NewExecutor.
func New(cfg monitor.Config, _ *slog.Logger) (monitor.Executor, error) {
	return &Executor{StateDir: cfg.OCIStateDir, procs: map[string]*proc{}}, nil
}

type proc struct {
	cmd     *exec.Cmd
	started chan struct{}
	killed  unix.Signal
	fds     []*os.File
	mu      sync.Mutex
}

func (p *proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) Console() *os.File { return nil }

func (p *proc) Wait() (monitor.ExitStatus, error) {
	<-p.started
	p.mu.Lock()
	if p.cmd.Process == nil {
		sig := p.killed
		p.mu.Unlock()
		return monitor.ExitStatus{Signaled: true, Signal: sig, ExitedAt: time.Now()}, nil
	}
	p.mu.Unlock()
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

func (e *Executor) Create(ctx context.Context, id string, spec *specs.Spec, io monitor.IO) (monitor.Process, error) {
	if len(spec.Process.Args) == 0 {
		return nil, errors.New("no args")
	}
	if strings.HasPrefix(spec.Process.Args[0], "/fail-create") {
		return nil, errors.New("create refused: " + spec.Process.Args[0])
	}
	cmd := exec.Command(spec.Process.Args[0], spec.Process.Args[1:]...)
	cmd.Env = spec.Process.Env
	// The real executor hands the fds to the init at create; this stand-in
	// only forks at start, so it keeps its own copies until then.
	var dups []*os.File
	for _, f := range []*os.File{io.Stdin, io.Stdout, io.Stderr} {
		d, err := dup(f)
		if err != nil {
			closeAll(dups)
			return nil, err
		}
		dups = append(dups, d)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = dups[0], dups[1], dups[2]
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{cmd: cmd, started: make(chan struct{}), fds: dups}
	e.mu.Lock()
	e.procs[id] = p
	e.mu.Unlock()
	return p, nil
}

func (e *Executor) get(id string) (*proc, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.procs[id]
	if !ok {
		return nil, errors.New("no container " + id)
	}
	return p, nil
}

func (e *Executor) Start(ctx context.Context, id string) error {
	p, err := e.get(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.started:
		return errors.New("already started")
	default:
	}
	err = p.cmd.Start()
	closeAll(p.fds)
	close(p.started)
	return err
}

func (e *Executor) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	p, err := e.get(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd.Process == nil && sig != 0 {
		select {
		case <-p.started:
		default:
			p.killed = sig
			closeAll(p.fds)
			close(p.started)
		}
		return nil
	}
	if p.cmd.Process == nil {
		return nil
	}
	if all {
		return unix.Kill(-p.cmd.Process.Pid, sig)
	}
	return p.cmd.Process.Signal(sig)
}

func (e *Executor) OOMKillCount(ctx context.Context, id string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(e.StateDir, id, OOMFile))
	if err != nil {
		return 0, nil
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
}

func dup(f *os.File) (*os.File, error) {
	if f == nil {
		return nil, nil
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
