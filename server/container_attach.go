package server

import (
	"context"
	"encoding/binary"
	"io"
	"sync"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/cri-server/cri-server/monitor"
)

// AttachStream joins the container's stdio held by its monitor: output
// comes from the monitor's fan-out (the log writer keeps its own copy),
// input and terminal resizes go to the monitor. As in containerd, it
// returns when the container's output ends (it exited), a write to the
// client fails, or ctx ends; the end of the client's input only ends the
// container's stdin when the container has stdin_once (kubectl run -i
// still gets the output that follows).
func (cs containerStreamer) AttachStream(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	s := cs.s
	rec, _, err := s.runningContainer(id)
	if err != nil {
		return err
	}
	conn, err := monitor.Attach(ctx, rec.Bundle, in != nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.log.Info("attached", "container", rec.ID, "stdin", in != nil, "tty", tty)
	a := &attachSession{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.output(out, errw, tty)
	}()
	if in != nil {
		// Ends when the client's input does; after we return, when the
		// library closes the client's streams.
		go a.input(in)
	}
	if resize != nil {
		go a.resizes(ctx, resize)
	}
	<-done
	s.log.Info("detached", "container", rec.ID)
	return nil
}

// attachSession is the daemon's end of one monitor attach connection.
type attachSession struct {
	conn *monitor.AttachConn
	wmu  sync.Mutex // frames up to the monitor come from two goroutines
}

func (a *attachSession) send(typ byte, p []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return monitor.WriteFrame(a.conn, typ, p)
}

// output copies the monitor's frames to the client until the monitor
// ends the session or a write to the client fails. Without a stderr
// stream, stderr joins stdout on a terminal and is dropped otherwise.
func (a *attachSession) output(out, errw io.Writer, tty bool) {
	var buf []byte
	for {
		typ, p, err := monitor.ReadFrame(a.conn.R, buf)
		buf = p
		if err != nil {
			return
		}
		w := out
		if typ == monitor.FrameStderr {
			switch {
			case errw != nil:
				w = errw
			case !tty:
				continue
			}
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(p); err != nil {
			return
		}
	}
}

// input sends the client's input, then its end.
func (a *attachSession) input(in io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 && a.send(monitor.FrameStdin, buf[:n]) != nil {
			return
		}
		if err != nil {
			a.send(monitor.FrameStdinClose, nil)
			return
		}
	}
}

func (a *attachSession) resizes(ctx context.Context, resize <-chan remotecommand.TerminalSize) {
	for {
		select {
		case size, ok := <-resize:
			if !ok {
				return
			}
			var p [4]byte
			binary.BigEndian.PutUint16(p[:], size.Height)
			binary.BigEndian.PutUint16(p[2:], size.Width)
			if a.send(monitor.FrameResize, p[:]) != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
