package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/cri-server/cri-server/oci"
)

// containerStreamer is the Streamer of the streaming server: exec sessions
// run on the executor with the daemon as parent; attach sessions join the
// stdio the container's monitor holds (container_attach.go).
type containerStreamer struct{ s *Server }

func (cs containerStreamer) CheckStreamable(id string) error {
	_, _, err := cs.s.runningContainer(id)
	return err
}

// ExecStream runs cmd in the container with the client's streams. The
// process is killed when the client goes away: ctx ends (as in
// containerd), a write to the client fails, or, with a terminal, the
// client's input ends (a hung-up terminal; the request context of a
// hijacked connection is never canceled, so a session would otherwise
// outlive its client). A non-zero exit is returned as an ExitError, which
// the library sends to the client as the command's exit code.
func (cs containerStreamer) ExecStream(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	s := cs.s
	rec, c, err := s.runningContainer(id)
	if err != nil {
		return err
	}
	if len(cmd) == 0 {
		return errors.New("exec: cmd is empty")
	}
	p, err := s.execProcess(rec, c, cmd, tty)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess := streamSession{clientGone: cancel}
	defer sess.close()
	var stdio oci.IO
	if !tty {
		if stdio, err = sess.pipes(in, out, errw); err != nil {
			return err
		}
	}
	proc, err := s.runtime.Exec(ctx, rec.ID, p, stdio)
	if err != nil {
		return err
	}
	sess.started()
	if tty {
		if err := sess.console(proc.Console, in, out, resize); err != nil {
			proc.Console.Close()
			waitExec(canceled, proc)
			return err
		}
	}
	st, killed, werr := waitExec(ctx, proc)
	sess.drain()
	if werr != nil {
		return fmt.Errorf("wait for exec in container %s: %w", rec.ID, werr)
	}
	s.log.Info("exec session ended", "container", rec.ID, "pid", proc.Pid, "tty", tty, "exit_code", st.ExitCode(), "killed", killed)
	if code := st.ExitCode(); code != 0 {
		return exitError(code)
	}
	return nil
}

// canceled is a done context: waitExec with it kills at once.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// exitError satisfies k8s.io/utils/exec.ExitError, which the streaming
// library turns into the NonZeroExitCode status clients read.
type exitError int

func (e exitError) Error() string   { return fmt.Sprintf("command terminated with exit code %d", int(e)) }
func (e exitError) String() string  { return e.Error() }
func (e exitError) Exited() bool    { return true }
func (e exitError) ExitStatus() int { return int(e) }

// streamSession copies between a client's streams and a process's stdio
// (pipes, or a pty master).
type streamSession struct {
	clientGone func()     // ends the session: the process is killed
	files      []*os.File // everything we close at the end
	child      []*os.File // the process's ends, closed once it started
	outputs    []*os.File // read ends, drained after the exit
	copies     sync.WaitGroup
}

// pipes makes a pipe per stream the client asked for; a stream it did
// not ask for is /dev/null.
func (ss *streamSession) pipes(in io.Reader, out, errw io.Writer) (oci.IO, error) {
	var stdio oci.IO
	if in != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return stdio, fmt.Errorf("create stdin pipe: %w", err)
		}
		ss.files, ss.child = append(ss.files, r, w), append(ss.child, r)
		stdio.Stdin = r
		// Not in copies: a client that never closes stdin must not keep
		// the session open after the process ended.
		go func() {
			io.Copy(w, in)
			w.Close()
		}()
	}
	for _, o := range []struct {
		w   io.Writer
		dst **os.File
	}{{out, &stdio.Stdout}, {errw, &stdio.Stderr}} {
		if o.w == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			return stdio, fmt.Errorf("create output pipe: %w", err)
		}
		ss.files, ss.child = append(ss.files, r, w), append(ss.child, w)
		*o.dst = w
		ss.copyOut(o.w, r)
	}
	return stdio, nil
}

func (ss *streamSession) copyOut(w io.Writer, r *os.File) {
	ss.outputs = append(ss.outputs, r)
	// Ends at EOF, at the drain deadline, or on a failed write to a client
	// that left; a pty master reads EIO once the last slave is closed.
	ss.copies.Go(func() {
		cw := &checkedWriter{w: w}
		io.Copy(cw, r)
		if cw.failed {
			ss.clientGone()
		}
	})
}

// checkedWriter says whether a write failed, as opposed to the read side
// of an io.Copy.
type checkedWriter struct {
	w      io.Writer
	failed bool
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.failed = c.failed || err != nil
	return n, err
}

// started drops our copies of the process's ends, so EOF comes when the
// process (and what it left behind) closed them.
func (ss *streamSession) started() {
	for _, f := range ss.child {
		f.Close()
	}
	ss.child = nil
}

// console wires a pty master: output to out, in to the terminal, resize
// events to TIOCSWINSZ.
func (ss *streamSession) console(master *os.File, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	if master == nil {
		return errors.New("exec: no console from the executor")
	}
	con, err := pollable(master)
	if err != nil {
		return err
	}
	ss.files = append(ss.files, con)
	if out != nil {
		ss.copyOut(out, con)
	}
	if in != nil {
		go func() {
			io.Copy(con, in)
			ss.clientGone()
		}()
	}
	if resize != nil {
		go func() {
			for size := range resize {
				setWinsize(con, size)
			}
		}()
	}
	return nil
}

// pollable returns a copy of f in non-blocking mode, registered with the
// runtime poller so that reads honour deadlines and Close interrupts
// them; f is closed. The executor hands the pty master over in blocking
// mode.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	var nfd int
	var derr error
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("dup console: %w", err)
	}
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || derr != nil {
		return nil, fmt.Errorf("dup console: %w", errors.Join(err, derr))
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("dup console: %w", err)
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}

func setWinsize(con *os.File, size remotecommand.TerminalSize) error {
	rc, err := con.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
	})
	return errors.Join(err, ierr)
}

// drain gives the output copies execDrain to finish after the process
// exited, then cuts them (a background child may hold them open).
func (ss *streamSession) drain() {
	for _, r := range ss.outputs {
		r.SetReadDeadline(time.Now().Add(execDrain))
	}
	ss.copies.Wait()
}

func (ss *streamSession) close() {
	for _, f := range ss.files {
		f.Close()
	}
}
