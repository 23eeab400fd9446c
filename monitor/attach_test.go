package monitor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/monitor"
)

func spawnWith(t *testing.T, cfg monitor.Config, args ...string) ctr {
	t.Helper()
	dir := t.TempDir()
	c := ctr{bundle: filepath.Join(dir, "b"), log: filepath.Join(dir, "c.log")}
	os.Mkdir(c.bundle, 0o700)
	cfg.ID, cfg.LogPath, cfg.OCIStateDir = "c1", c.log, c.bundle
	spec := &specs.Spec{Process: &specs.Process{Args: args, Env: []string{"PATH=/usr/bin:/bin"}}}
	if _, err := monitor.Spawn(context.Background(), os.Args[0], c.bundle, cfg, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpKill, Signal: 9})
		for i := 0; i < 300; i++ {
			if _, err := os.Stat(filepath.Join(c.bundle, monitor.SocketFile)); os.IsNotExist(err) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("monitor still running after the test")
	})
	return c
}

// readUntil reads stdout frames until want appears or the connection ends.
func readUntil(t *testing.T, a *monitor.AttachConn, want string) string {
	t.Helper()
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got bytes.Buffer
	for !strings.Contains(got.String(), want) {
		typ, p, err := monitor.ReadFrame(a.R, nil)
		if err != nil {
			t.Fatalf("read attach: %v (got %q, want %q)", err, got.String(), want)
		}
		if typ == monitor.FrameStdout {
			got.Write(p)
		}
	}
	return got.String()
}

func attach(t *testing.T, c ctr, stdin bool) *monitor.AttachConn {
	t.Helper()
	a, err := monitor.Attach(context.Background(), c.bundle, stdin)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// Two clients see the same output; the log still gets every line; the
// first client's input reaches the container; with stdin_once its end is
// the container's EOF, and the clients then read EOF.
func TestAttachFanOutAndStdinOnce(t *testing.T) {
	c := spawnWith(t, monitor.Config{Stdin: true, StdinOnce: true},
		"/bin/sh", "-c", `while read l; do echo "got $l"; done; echo bye`)
	call(t, c, monitor.OpStart)
	a := attach(t, c, true)
	b := attach(t, c, false)
	mustWrite(t, monitor.WriteFrame(a, monitor.FrameStdin, []byte("one\n")))
	readUntil(t, a, "got one\n")
	readUntil(t, b, "got one\n")
	mustWrite(t, monitor.WriteFrame(a, monitor.FrameStdinClose, nil))
	readUntil(t, b, "bye\n")
	// The container exits at EOF: the monitor ends both sessions.
	for _, cl := range []*monitor.AttachConn{a, b} {
		cl.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := monitor.ReadFrame(cl.R, nil); err != nil {
				if err != io.EOF {
					t.Errorf("session end: %v, want EOF", err)
				}
				break
			}
		}
	}
	r := call(t, c, monitor.OpWait)
	if r.Exit == nil || r.Exit.Code != 0 {
		t.Errorf("exit %+v", r.Exit)
	}
	if got := strings.Join(logLines(t, c.log), "|"); got != "stdout F got one|stdout F bye" {
		t.Errorf("log %q", got)
	}
}

// Without stdin_once a client's input ending leaves the container's stdin
// open for the next client.
func TestAttachStdinStaysOpen(t *testing.T) {
	c := spawnWith(t, monitor.Config{Stdin: true}, "/bin/sh", "-c", `while read l; do echo "got $l"; done`)
	call(t, c, monitor.OpStart)
	a := attach(t, c, true)
	mustWrite(t, monitor.WriteFrame(a, monitor.FrameStdin, []byte("one\n")))
	readUntil(t, a, "got one\n")
	mustWrite(t, monitor.WriteFrame(a, monitor.FrameStdinClose, nil))
	a.Close()
	b := attach(t, c, true)
	mustWrite(t, monitor.WriteFrame(b, monitor.FrameStdin, []byte("two\n")))
	readUntil(t, b, "got two\n")
}

func TestAttachToExitedRefused(t *testing.T) {
	c := spawnWith(t, monitor.Config{Stdin: true}, "sleep", "100")
	call(t, c, monitor.OpStart)
	monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpKill, Signal: 9})
	monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpWait})
	if a, err := monitor.Attach(context.Background(), c.bundle, true); err == nil {
		a.Close()
		t.Error("attach succeeded")
	}
}

// A client's input to a container without stdin is dropped; its output
// still comes.
func TestAttachStdinWithoutContainerStdin(t *testing.T) {
	c := spawnWith(t, monitor.Config{}, "/bin/sh", "-c", "read l; echo read=$?; exec sleep 100")
	// Attached before the start, so no output can come before.
	a := attach(t, c, true)
	call(t, c, monitor.OpStart)
	mustWrite(t, monitor.WriteFrame(a, monitor.FrameStdin, []byte("x\n")))
	readUntil(t, a, "read=1\n")
}

func mustWrite(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A client that does not read is dropped once its queue is full; the
// container never waits for it and the log keeps every line.
func TestAttachSlowClientLosesNoLogLine(t *testing.T) {
	c := spawnWith(t, monitor.Config{}, "seq", "1", "200000")
	a := attach(t, c, false) // never read
	call(t, c, monitor.OpStart)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := monitor.Call(ctx, c.bundle, monitor.Request{Op: monitor.OpWait})
	if err != nil || r.Exit == nil || r.Exit.Code != 0 {
		t.Fatalf("wait: %v %+v", err, r)
	}
	lines := logLines(t, c.log)
	if len(lines) != 200000 || lines[len(lines)-1] != "stdout F 200000" {
		t.Errorf("log has %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	// The dropped client reads what was queued, then the end.
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := monitor.ReadFrame(a.R, nil); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("dropped client's connection still open")
			}
			break
		}
	}
}
