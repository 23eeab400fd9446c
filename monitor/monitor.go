// Package monitor owns the process that sits outside a container for its
// whole life: the parent of the container's init (so it reaps it and gets
// the real exit status), the holder of its stdio (pipes or pty master) and
// so the point where attach clients join it (attach.go), the writer of its
// CRI log, the detector of OOM kills, and the writer of its exit record. It
// runs as `<shim> monitor <bundle>` in its own session, so killing the
// daemon, even with -9, stops nothing; the shim is cmd/cri-server-shim,
// embedded in cri-server and sealed in a memfd at start (or cri-server
// itself in builds without it).
// The daemon talks to it over a control socket in the bundle dir.
//
// Two implementations keep these contracts: the C monitor of package
// monitor/cmon, which a binary linking it (the shim) runs from a
// constructor before the Go runtime exists, at a fraction of the memory,
// and the Go one here (Main), for binaries without it and behind
// CRI_SERVER_GO_MONITOR=1. The executor stays Go: the C monitor runs it in
// short-lived children (helper.go: CreateMain, OpMain).
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cri-server/cri-server/oci"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Files in a container's bundle dir.
const (
	ConfigFile = "monitor.json"
	SpecFile   = "config.json"
	SocketFile = "monitor.sock"
	LogFile    = "monitor.log"
)

// Config is what the daemon tells the monitor, written to ConfigFile.
type Config struct {
	ID          string `json:"id"`
	LogPath     string `json:"log_path"`   // CRI log file; "" = discard
	OCIStateDir string `json:"oci_state"`  // oci.Config.StateDir
	Stdin       bool   `json:"stdin"`      // keep a stdin pipe open for attach
	StdinOnce   bool   `json:"stdin_once"` // close stdin after the first attach ends
	Terminal    bool   `json:"terminal"`   // from the spec; pty output goes to stdout
}

// IO is the container's stdio as the executor takes it.
type IO struct {
	Stdin, Stdout, Stderr *os.File
}

// ExitStatus is how the init ended: the executor's own type.
type ExitStatus = oci.ExitStatus

// Process is the created container init, waiting to be started.
type Process interface {
	Pid() int
	Console() *os.File // pty master, nil without a terminal
	Wait() (ExitStatus, error)
}

// Executor is the part of oci.Runtime the monitor uses. Create must be
// called in this process so that it is the init's parent.
type Executor interface {
	Create(ctx context.Context, id string, spec *specs.Spec, io IO) (Process, error)
	Start(ctx context.Context, id string) error
	Kill(ctx context.Context, id string, sig unix.Signal, all bool) error
	// OOMKillCount reads the container's memory cgroup OOM kill counter. It
	// is read before the cgroup can go (containerd issue 8180: a container
	// that dies at once was reported Error, not OOMKilled).
	OOMKillCount(ctx context.Context, id string) (uint64, error)
}

// NewExecutor builds the executor the monitor runs containers with. The
// lead's main.go sets it to an oci.Runtime adapter; tests set a stand-in.
var NewExecutor func(cfg Config, log *slog.Logger) (Executor, error)

// Main is `cri-server monitor <bundle-dir>`. Fd 3, when open, is the ready
// pipe: the monitor writes one JSON line (pid or error) once the container
// is created, then closes it.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: cri-server monitor <bundle-dir>")
		return 2
	}
	bundle, err := filepath.Abs(args[0])
	ready := os.NewFile(3, "ready")
	if err == nil {
		err = os.Chdir(bundle)
	}
	if err != nil {
		reportReady(ready, 0, fmt.Errorf("enter bundle: %w", err))
		return 1
	}
	lf, err := os.OpenFile(filepath.Join(bundle, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		reportReady(ready, 0, err)
		return 1
	}
	defer lf.Close()
	log := slog.New(slog.NewTextHandler(lf, nil))
	m, err := newMonitor(bundle, log)
	if err == nil {
		err = m.create()
	}
	if err != nil {
		log.Error("create container", "error", err)
		reportReady(ready, 0, err)
		return 1
	}
	// The socket is bound by a name relative to the bundle (our cwd): a
	// full path can pass the 108-byte sun_path limit.
	srv, err := m.serve(SocketFile)
	if err != nil {
		// Without its socket nobody can start or stop the container: undo
		// it and report, leaving nothing behind in the bundle.
		log.Error("serve control socket", "error", err)
		m.ex.Kill(context.Background(), m.cfg.ID, unix.SIGKILL, true)
		m.proc.Wait()
		m.copies.Wait()
		if m.logw != nil {
			m.logw.Close()
		}
		reportReady(ready, 0, fmt.Errorf("serve control socket: %w", err))
		return 1
	}
	reportReady(ready, m.proc.Pid(), nil)
	st, werr := m.proc.Wait()
	m.finish(st, werr)
	// Give waiters a moment to read the record before the socket goes.
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	os.Remove(SocketFile)
	return 0
}

// Ready is the one line the monitor writes on the ready pipe.
type Ready struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

func reportReady(f *os.File, pid int, err error) {
	if f == nil {
		return
	}
	r := Ready{Pid: pid}
	if err != nil {
		r.Error = err.Error()
	}
	json.NewEncoder(f).Encode(r)
	f.Close()
}

type monitor struct {
	bundle string
	cfg    Config
	log    *slog.Logger
	ex     Executor
	spec   *specs.Spec
	proc   Process
	logw   *LogWriter
	stdin  *os.File // our end of the container's stdin
	// The pty master with a terminal: attach writes input and resizes it.
	console *os.File
	fan     fanout // attached clients (attach.go)

	stdinMu     sync.Mutex
	stdinClosed bool
	copies      sync.WaitGroup
	oomAt0      uint64

	mu      sync.Mutex
	started bool
	exit    *Exit
	exited  chan struct{}
}

func newMonitor(bundle string, log *slog.Logger) (*monitor, error) {
	m := &monitor{bundle: bundle, log: log, exited: make(chan struct{})}
	if err := readJSON(filepath.Join(bundle, ConfigFile), &m.cfg); err != nil {
		return nil, err
	}
	m.spec = new(specs.Spec)
	if err := readJSON(filepath.Join(bundle, SpecFile), m.spec); err != nil {
		return nil, err
	}
	if NewExecutor == nil {
		return nil, errors.New("no executor linked into this binary")
	}
	ex, err := NewExecutor(m.cfg, log)
	if err != nil {
		return nil, fmt.Errorf("create executor: %w", err)
	}
	m.ex = ex
	m.log = log.With("container", m.cfg.ID)
	return m, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", filepath.Base(path), err)
	}
	return nil
}

// create opens the log, makes the stdio and creates the container. On any
// failure it undoes what it made.
func (m *monitor) create() (err error) {
	if m.cfg.LogPath != "" {
		if m.logw, err = OpenLog(m.cfg.LogPath); err != nil {
			return fmt.Errorf("open container log: %w", err)
		}
	}
	var io IO
	var ours []*os.File   // our ends, kept
	var theirs []*os.File // container ends, closed after create
	defer func() {
		for _, f := range theirs {
			f.Close()
		}
		if err != nil {
			for _, f := range ours {
				f.Close()
			}
			if m.logw != nil {
				m.logw.Close()
			}
		}
	}()
	if m.cfg.Stdin {
		r, w, perr := os.Pipe()
		if perr != nil {
			return fmt.Errorf("create stdin pipe: %w", perr)
		}
		io.Stdin, m.stdin = r, w
		theirs, ours = append(theirs, r), append(ours, w)
	}
	var outs [2]*os.File
	if !m.spec.Process.Terminal {
		for i, dst := range []**os.File{&io.Stdout, &io.Stderr} {
			r, w, perr := os.Pipe()
			if perr != nil {
				return fmt.Errorf("create output pipe: %w", perr)
			}
			*dst, outs[i] = w, r
			theirs, ours = append(theirs, w), append(ours, r)
		}
	}
	proc, err := m.ex.Create(context.Background(), m.cfg.ID, m.spec, io)
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	m.proc = proc
	if n, err := m.ex.OOMKillCount(context.Background(), m.cfg.ID); err == nil {
		m.oomAt0 = n
	}
	if c := proc.Console(); c != nil {
		outs = [2]*os.File{c, nil}
		m.console = c
	}
	for i, r := range outs {
		if r != nil {
			m.copyOut([]string{"stdout", "stderr"}[i], r)
		}
	}
	return nil
}

func (m *monitor) copyOut(stream string, f *os.File) {
	typ := FrameStdout
	if stream == "stderr" {
		typ = FrameStderr
	}
	// Attached clients get each chunk as the log writer reads it.
	r := io.TeeReader(f, teeWriter{&m.fan, typ})
	m.copies.Add(1)
	go func() {
		defer m.copies.Done()
		defer f.Close()
		if m.logw == nil {
			io.Copy(io.Discard, r)
			return
		}
		// A pty master returns EIO once the last slave closes: that is its EOF.
		if err := m.logw.Copy(stream, r); err != nil && !errors.Is(err, unix.EIO) {
			m.log.Warn("copy container output", "stream", stream, "error", err)
		}
	}()
}

// finish reads the OOM counter, drains the output and writes the exit
// record, in that order: the record is the signal that everything the
// container wrote is in the log.
func (m *monitor) finish(st ExitStatus, werr error) {
	// The OOM counter first: draining may take seconds, and a RemoveContainer
	// meanwhile destroys the cgroup with it (containerd issue 8180).
	oomKilled := false
	if n, err := m.ex.OOMKillCount(context.Background(), m.cfg.ID); err == nil && n > m.oomAt0 {
		oomKilled = true
	}
	done := make(chan struct{})
	go func() { m.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// A daemonized grandchild still holds the pipe; the init's exit is
		// what the kubelet asked about.
		m.log.Warn("container output still open after init exit")
	}
	// Attached clients get the last output, then EOF.
	m.fan.closeAll(time.Second)
	if m.logw != nil {
		m.logw.Close()
	}
	m.stdinMu.Lock()
	if m.stdin != nil && !m.stdinClosed {
		m.stdinClosed = true
		m.stdin.Close()
	}
	m.stdinMu.Unlock()
	e := Exit{Code: st.ExitCode(), ExitedAt: st.ExitedAt}
	if st.Signaled {
		e.Signal = int(st.Signal)
	}
	if e.ExitedAt.IsZero() {
		e.ExitedAt = time.Now()
	}
	if werr != nil {
		e.Code, e.Message = 255, "wait for container: "+werr.Error()
	}
	e.OOMKilled = oomKilled
	if err := WriteExit(m.bundle, e); err != nil {
		m.log.Error("write exit record", "error", err)
	}
	m.log.Info("container exited", "code", e.Code, "oom_killed", e.OOMKilled)
	m.mu.Lock()
	m.exit = &e
	m.mu.Unlock()
	close(m.exited)
}
