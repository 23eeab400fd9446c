package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Control operations, one JSON request line and one JSON reply line per
// connection.
const (
	OpStart     = "start"
	OpReopenLog = "reopen-log"
	OpStatus    = "status"
	OpKill      = "kill"
	OpWait      = "wait" // replies when the exit record is written
	// OpAttach turns the connection into an attach session (attach.go).
	OpAttach = "attach"
)

// Request is one control call.
type Request struct {
	Op     string `json:"op"`
	Signal int    `json:"signal,omitempty"`
	All    bool   `json:"all,omitempty"`
	Stdin  bool   `json:"stdin,omitempty"` // attach: the client sends input
}

// Reply answers a Request.
type Reply struct {
	Error   string `json:"error,omitempty"`
	Pid     int    `json:"pid,omitempty"` // the container init's
	Monitor int    `json:"monitor"`       // the monitor's own pid
	Started bool   `json:"started,omitempty"`
	Exit    *Exit  `json:"exit,omitempty"`
}

func (m *monitor) serve(path string) (net.Listener, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go m.handle(c)
		}
	}()
	return l, nil
}

func (m *monitor) handle(c net.Conn) {
	var req Request
	// One request line; for attach, what follows it on br is frames.
	br := bufio.NewReader(c)
	line, err := br.ReadSlice('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		c.Close()
		return
	}
	if req.Op == OpAttach {
		m.attach(c, br, req, m.do(Request{Op: OpStatus}))
		return
	}
	defer c.Close()
	rep := m.do(req)
	writeReply(c, rep)
}

func writeReply(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func (m *monitor) do(req Request) Reply {
	ctx := context.Background()
	m.mu.Lock()
	rep := Reply{Pid: m.proc.Pid(), Monitor: os.Getpid(), Started: m.started, Exit: m.exit}
	m.mu.Unlock()
	var err error
	switch req.Op {
	case OpStatus:
	case OpStart:
		m.mu.Lock()
		if m.exit != nil {
			err = errors.New("container has exited")
		} else if !m.started {
			if err = m.ex.Start(ctx, m.cfg.ID); err == nil {
				m.started = true
				m.log.Info("container started")
			}
		}
		rep.Started, rep.Pid = m.started, m.proc.Pid()
		m.mu.Unlock()
	case OpKill:
		if rep.Exit == nil {
			err = m.ex.Kill(ctx, m.cfg.ID, unix.Signal(req.Signal), req.All)
		}
	case OpReopenLog:
		if m.logw != nil && rep.Exit == nil {
			err = m.logw.Reopen()
		}
	case OpWait:
		<-m.exited
		m.mu.Lock()
		rep.Exit = m.exit
		m.mu.Unlock()
	default:
		err = fmt.Errorf("unknown op %q", req.Op)
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep
}

// ErrGone means the monitor's socket does not answer: it has exited (read
// the exit record) or died.
var ErrGone = errors.New("monitor gone")

// Call sends one request to the monitor of the container in bundle.
func Call(ctx context.Context, bundle string, req Request) (*Reply, error) {
	c, err := dial(ctx, bundle)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else if req.Op != OpWait {
		c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	var rep Reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	if rep.Error != "" {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}

// dial connects to the monitor socket in bundle. A path longer than
// sun_path allows is reached through an O_PATH fd of the bundle dir.
func dial(ctx context.Context, bundle string) (net.Conn, error) {
	var d net.Dialer
	path := filepath.Join(bundle, SocketFile)
	if len(path) < 100 {
		return d.DialContext(ctx, "unix", path)
	}
	fd, err := unix.Open(bundle, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: bundle, Err: err}
	}
	defer unix.Close(fd)
	return d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", fd, SocketFile))
}
