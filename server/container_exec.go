package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/oci"
)

const (
	// execOutputCap bounds what ExecSync keeps of each stream: the
	// kubelet's own cap on a CRI message. Output past it is read and
	// dropped, so the process never blocks on a full pipe.
	execOutputCap = 16 << 20
	// execDrain is how long output is still read after the exec'd process
	// is gone. What it wrote is already in the pipe and is read at once;
	// only a background child that inherited the pipe keeps it open, and
	// waiting for that child hung containerd (issue 9568) and the kubelet
	// (kubernetes issue 92057) for minutes.
	execDrain = 200 * time.Millisecond
)

// ExecSync runs cmd in a running container and returns its exit code and
// output. Past the request's timeout the process (and its process group)
// is killed and reaped, and the answer is DeadlineExceeded, which the
// kubelet reports as a probe timeout.
func (s *Server) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("exec: cmd is empty")
	}
	if r.GetTimeout() < 0 {
		return nil, errdefs.InvalidArgument("exec: negative timeout %d", r.GetTimeout())
	}
	rec, c, err := s.runningContainer(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	proc, err := s.execProcess(rec, c, r.GetCmd(), false)
	if err != nil {
		return nil, err
	}
	if t := r.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	res, err := s.execSync(ctx, rec.ID, proc)
	if err != nil {
		return nil, err
	}
	return &runtime.ExecSyncResponse{Stdout: res.stdout.bytes(), Stderr: res.stderr.bytes(), ExitCode: int32(res.code)}, nil
}

// runningContainer finds id and checks that it is running.
func (s *Server) runningContainer(id string) (*containerRecord, *container, error) {
	rec, c, err := s.ctrs.resolve(id)
	if err != nil {
		return nil, nil, err
	}
	if rec.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, nil, errdefs.FailedPrecondition("container %s is %s, not RUNNING", rec.ID, stateName(rec.Status.State))
	}
	return rec, c, nil
}

// execProcess is the container's own process with cmd as its args, as
// containerd builds it: the same env, cwd, user, capabilities,
// no_new_privileges, AppArmor/SELinux labels and rlimits, so an exec can
// do no more than the container itself.
func (s *Server) execProcess(rec *containerRecord, c *container, cmd []string, tty bool) (*specs.Process, error) {
	base, err := c.specProcess(rec.Bundle)
	if err != nil {
		return nil, err
	}
	p := *base
	p.Args = slices.Clone(cmd)
	p.CommandLine = ""
	p.Terminal = tty
	p.ConsoleSize = nil
	if tty && !slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, "TERM=") }) {
		p.Env = append(slices.Clone(p.Env), "TERM=xterm")
	}
	return &p, nil
}

// specProcess reads the process of the container's OCI spec once; the
// process part of a spec never changes after create. A failed read is not
// kept: the next exec tries again.
func (c *container) specProcess(bundle string) (*specs.Process, error) {
	c.procMu.Lock()
	defer c.procMu.Unlock()
	if c.proc != nil {
		return c.proc, nil
	}
	var sp specs.Spec
	b, err := os.ReadFile(filepath.Join(bundle, monitor.SpecFile))
	if err == nil {
		err = json.Unmarshal(b, &sp)
	}
	if err == nil && sp.Process == nil {
		err = errors.New("no process")
	}
	if err != nil {
		return nil, fmt.Errorf("read container spec: %w", err)
	}
	c.proc = sp.Process
	return c.proc, nil
}

type execResult struct {
	code           int
	stdout, stderr *cappedBuffer
}

// execSync runs p in container id with piped output until it exits or ctx
// ends. The daemon is the process's parent and always reaps it.
func (s *Server) execSync(ctx context.Context, id string, p *specs.Process) (*execResult, error) {
	var pipes [2][2]*os.File // [stream][read, write]
	defer func() {
		for _, pp := range pipes {
			for _, f := range pp {
				if f != nil {
					f.Close()
				}
			}
		}
	}()
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("create exec pipe: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	t0 := time.Now()
	proc, err := s.runtime.Exec(ctx, id, p, oci.IO{Stdout: pipes[0][1], Stderr: pipes[1][1]})
	if err != nil {
		if ctx.Err() != nil {
			return nil, execTimeout(id, ctx)
		}
		return nil, err // the executor names the container
	}
	// Our copies of the write ends go, so EOF comes when the process (and
	// anything it left behind) has closed them.
	for i := range pipes {
		pipes[i][1].Close()
		pipes[i][1] = nil
	}
	res := &execResult{stdout: &cappedBuffer{max: execOutputCap}, stderr: &cappedBuffer{max: execOutputCap}}
	var readers sync.WaitGroup
	for i, b := range []*cappedBuffer{res.stdout, res.stderr} {
		readers.Go(func() { b.readFrom(pipes[i][0]) })
	}
	st, timedOut, werr := waitExec(ctx, proc)
	for i := range pipes {
		pipes[i][0].SetReadDeadline(time.Now().Add(execDrain))
	}
	readers.Wait()
	if werr != nil {
		return nil, fmt.Errorf("wait for exec in container %s: %w", id, werr)
	}
	if timedOut {
		s.log.Info("exec timed out", "container", id, "pid", proc.Pid, "took", time.Since(t0))
		return nil, execTimeout(id, ctx)
	}
	res.code = st.ExitCode()
	s.log.Debug("exec finished", "container", id, "pid", proc.Pid, "exit_code", res.code, "took", time.Since(t0))
	return res, nil
}

// waitExec waits for an exec'd process. If ctx ends first, the process and
// its process group are killed and reaped; killed says so.
func waitExec(ctx context.Context, proc *oci.Process) (st oci.ExitStatus, killed bool, err error) {
	type waited struct {
		st  oci.ExitStatus
		err error
	}
	done := make(chan waited, 1)
	go func() {
		st, err := proc.Wait()
		done <- waited{st, err}
	}()
	var w waited
	select {
	case w = <-done:
	case <-ctx.Done():
		killed = true
		// Setsid made the process a group leader: the group takes the
		// children of a shell with it. The leader is not reaped yet (the
		// Wait above has not returned), so its id cannot have been reused.
		syscall.Kill(-proc.Pid, syscall.SIGKILL)
		syscall.Kill(proc.Pid, syscall.SIGKILL)
		w = <-done
	}
	return w.st, killed, w.err
}

// execTimeout is DeadlineExceeded when the request's own timeout passed, or
// the context's error (the client went away).
func execTimeout(id string, ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errdefs.New(errdefs.ErrDeadlineExceeded, "exec in container %s: timeout exceeded, process killed", id)
	}
	return fmt.Errorf("exec in container %s: %w", id, ctx.Err())
}

// cappedBuffer keeps the first max bytes written and counts the rest.
type cappedBuffer struct {
	max     int
	buf     []byte
	dropped int64
}

// readFrom reads r until EOF, an error or its read deadline.
func (b *cappedBuffer) readFrom(r *os.File) {
	chunk := make([]byte, 32<<10)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			keep := min(n, b.max-len(b.buf))
			b.buf = append(b.buf, chunk[:keep]...)
			b.dropped += int64(n - keep)
		}
		if err != nil {
			return
		}
	}
}

func (b *cappedBuffer) bytes() []byte { return b.buf }
