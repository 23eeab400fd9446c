package monitor

// Attach: clients join the container's stdio, which the monitor holds.
// After the OpAttach reply line the control connection carries frames both
// ways until either side closes it: the container's output, fanned out to
// every attached client, comes down; stdin data, stdin end and terminal
// resizes go up. The log writer always gets the output first-hand: a slow
// or stuck client loses its own copy (it is dropped), never a log line.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Frame types of an attach connection.
const (
	FrameStdout     byte = 1 // monitor -> client
	FrameStderr     byte = 2 // monitor -> client
	FrameStdin      byte = 3 // client -> monitor: bytes for the container's stdin
	FrameStdinClose byte = 4 // client -> monitor: the client's stdin ended
	FrameResize     byte = 5 // client -> monitor: rows, cols (2 x uint16 big endian)
)

// maxFrame bounds a frame's payload: a client's frame larger than this is
// a protocol error, not an allocation.
const maxFrame = 1 << 20

// clientQueue is how many output chunks (up to 16 KiB each) wait for a
// client before it is dropped as too slow.
const clientQueue = 256

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, p []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := w.Write(append(hdr[:], p...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one frame into buf (grown as needed).
func ReadFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, buf, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, buf, fmt.Errorf("attach frame of %d bytes", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, buf, err
	}
	return hdr[0], buf, nil
}

// fanout copies the container's output to the attached clients.
type fanout struct {
	mu      sync.Mutex
	clients map[*attachClient]struct{}
	closed  bool
	writers sync.WaitGroup
}

type attachClient struct {
	conn net.Conn
	out  chan []byte // frames, ready to write
	once sync.Once
}

func (c *attachClient) drop() { c.once.Do(func() { close(c.out) }) }

// add registers a client; false when the output has already ended.
func (f *fanout) add(conn net.Conn) (*attachClient, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false
	}
	if f.clients == nil {
		f.clients = map[*attachClient]struct{}{}
	}
	c := &attachClient{conn: conn, out: make(chan []byte, clientQueue)}
	f.clients[c] = struct{}{}
	f.writers.Go(func() {
		for b := range c.out {
			if _, err := conn.Write(b); err != nil {
				break
			}
		}
		// The connection closes once everything queued was sent: the
		// client reads EOF after the container's last output.
		conn.Close()
		for range c.out {
		}
	})
	return c, true
}

func (f *fanout) remove(c *attachClient) {
	f.mu.Lock()
	delete(f.clients, c)
	f.mu.Unlock()
	c.drop()
}

// send queues one chunk of a stream for every client, without blocking.
func (f *fanout) send(typ byte, p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.clients) == 0 {
		return
	}
	frame := make([]byte, 5+len(p))
	frame[0] = typ
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(p)))
	copy(frame[5:], p)
	for c := range f.clients {
		select {
		case c.out <- frame:
		default:
			// Too slow: its queue is dropped with it, and closing the
			// connection unblocks a write the client is not reading.
			delete(f.clients, c)
			c.drop()
			c.conn.Close()
		}
	}
}

// closeAll ends every client once its queue is sent (or after wait), and
// refuses new ones.
func (f *fanout) closeAll(wait time.Duration) {
	f.mu.Lock()
	f.closed = true
	for c := range f.clients {
		delete(f.clients, c)
		c.drop()
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// teeWriter hands what the log copy reads to the fan-out.
type teeWriter struct {
	f   *fanout
	typ byte
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.f.send(t.typ, p)
	return len(p), nil
}

// attach serves one attached client on c until it leaves or the container
// ends. br reads the connection past the request line.
func (m *monitor) attach(c net.Conn, br *bufio.Reader, req Request, rep Reply) {
	defer c.Close()
	if rep.Exit != nil {
		rep.Error = "container has exited"
	}
	// As in containerd, a client's input to a container created without
	// stdin is dropped rather than refused: output still flows.
	req.Stdin = req.Stdin && m.cfg.Stdin
	if err := writeReply(c, rep); err != nil || rep.Error != "" {
		return
	}
	cl, ok := m.fan.add(c)
	if !ok {
		return
	}
	defer m.fan.remove(cl)
	m.log.Info("client attached", "stdin", req.Stdin)
	var buf []byte
	for {
		typ, p, err := ReadFrame(br, buf)
		buf = p
		if err != nil {
			break
		}
		switch typ {
		case FrameStdin:
			if req.Stdin {
				m.writeStdin(p)
			}
		case FrameStdinClose:
			if req.Stdin {
				m.stdinEnded()
			}
		case FrameResize:
			if len(p) == 4 {
				m.resize(binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]))
			}
		}
	}
	if req.Stdin {
		m.stdinEnded()
	}
	m.log.Info("client detached")
}

// stdinTarget is where attached input goes: the pty master with a
// terminal, else our end of the stdin pipe.
func (m *monitor) stdinTarget() *os.File {
	if m.console != nil {
		return m.console
	}
	return m.stdin
}

func (m *monitor) writeStdin(p []byte) {
	m.stdinMu.Lock()
	defer m.stdinMu.Unlock()
	if t := m.stdinTarget(); t != nil && !m.stdinClosed {
		if _, err := t.Write(p); err != nil {
			m.log.Warn("write container stdin", "error", err)
		}
	}
}

// stdinEnded applies stdin_once: the container's stdin closes when the
// first attached client's input ends, so a process reading it sees EOF.
// Without stdin_once it stays open for the next client. A terminal is
// never closed (that would hang up its output too).
func (m *monitor) stdinEnded() {
	if !m.cfg.StdinOnce || m.console != nil {
		return
	}
	m.stdinMu.Lock()
	defer m.stdinMu.Unlock()
	if m.stdin != nil && !m.stdinClosed {
		m.stdinClosed = true
		m.stdin.Close()
		m.log.Info("container stdin closed (stdin_once)")
	}
}

func (m *monitor) resize(rows, cols uint16) {
	if m.console == nil || rows == 0 || cols == 0 {
		return
	}
	rc, err := m.console.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		})
	}
	if err != nil {
		m.log.Warn("resize terminal", "error", err)
	}
}

// AttachConn is the client side of an attach connection.
type AttachConn struct {
	net.Conn
	R *bufio.Reader // frames from the monitor
}

// Attach joins the stdio of the container in bundle. stdin says the client
// sends input (and so counts for stdin_once).
func Attach(ctx context.Context, bundle string, stdin bool) (*AttachConn, error) {
	c, err := dial(ctx, bundle)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := writeReply(c, Request{Op: OpAttach, Stdin: stdin}); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	br := bufio.NewReaderSize(c, 32<<10)
	line, err := br.ReadSlice('\n')
	var rep Reply
	if err == nil {
		err = jsonUnmarshal(line, &rep)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	if rep.Error != "" {
		c.Close()
		return nil, errors.New(rep.Error)
	}
	c.SetDeadline(time.Time{})
	return &AttachConn{Conn: c, R: br}, nil
}
