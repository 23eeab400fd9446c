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
	done := make(chan struct{})
	var wmu sync.Mutex // frames up to the monitor come from two goroutines
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return monitor.WriteFrame(conn, typ, p)
	}
	go func() {
		defer close(done)
		var buf []byte
		for {
			typ, p, err := monitor.ReadFrame(conn.R, buf)
			buf = p
			if err != nil {
				return
			}
			w := out
			if typ == monitor.FrameStderr && errw != nil {
				w = errw
			} else if typ == monitor.FrameStderr && !tty {
				continue // the client did not ask for stderr
			}
			if w == nil {
				continue
			}
			if _, err := w.Write(p); err != nil {
				return
			}
		}
	}()
	if in != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 {
					if send(monitor.FrameStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					send(monitor.FrameStdinClose, nil)
					return
				}
			}
		}()
	}
	if resize != nil {
		go func() {
			for {
				select {
				case size, ok := <-resize:
					if !ok {
						return
					}
					var p [4]byte
					binary.BigEndian.PutUint16(p[:], size.Height)
					binary.BigEndian.PutUint16(p[2:], size.Width)
					if send(monitor.FrameResize, p[:]) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	<-done
	s.log.Info("detached", "container", rec.ID)
	return nil
}
