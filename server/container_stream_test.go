package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs/grpcerr"
)

// syncBuf is a WriteCloser the session writes to from its goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) Close() error { return nil }
func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExecStream(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	cs := containerStreamer{e.s}
	tests := []struct {
		name           string
		cmd            []string
		stdin          string
		tty            bool
		resize         *remotecommand.TerminalSize
		stdout, stderr string
		code           int
	}{
		{name: "stdin to stdout", cmd: []string{"cat"}, stdin: "hello\n", stdout: "hello\n"},
		{name: "stderr and exit code", cmd: []string{"sh", "-c", "echo oops >&2; exit 3"}, stderr: "oops\n", code: 3},
		{name: "tty has TERM and a terminal", cmd: []string{"sh", "-c", "test -t 0 && echo $TERM"}, tty: true, stdout: "xterm\r\n"},
		{name: "tty resize", tty: true, resize: &remotecommand.TerminalSize{Width: 100, Height: 30},
			cmd: []string{"sh", "-c", `while [ "$(stty size)" != "30 100" ]; do sleep 0.05; done; echo resized`}, stdout: "resized\r\n"},
		{name: "background child does not hold the session", cmd: []string{"sh", "-c", "sleep 4324 & echo started"}, stdout: "started\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in io.Reader
			if tt.stdin != "" {
				in = strings.NewReader(tt.stdin)
			}
			out, errw := &syncBuf{}, &syncBuf{}
			var errWC io.WriteCloser = errw
			if tt.tty {
				errWC = nil
			}
			resize := make(chan remotecommand.TerminalSize, 1)
			if tt.resize != nil {
				resize <- *tt.resize
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := cs.ExecStream(ctx, id, tt.cmd, in, out, errWC, tt.tty, resize)
			code := 0
			var ee exitError
			if errors.As(err, &ee) {
				code = int(ee)
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || out.String() != tt.stdout || errw.String() != tt.stderr {
				t.Errorf("code %d stdout %q stderr %q, want %d %q %q", code, out, errw, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	if ps := e.pidnsProcs(id); len(ps) != 2 { // init and the sleep left behind
		t.Errorf("processes in the container: %v", ps)
	}
}

// failWriter is a client that went away.
type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("connection reset") }
func (failWriter) Close() error                { return nil }

// A client that goes away kills its exec: its context ends, a write to it
// fails, or its terminal's input ends.
func TestExecStreamClientGoneKills(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	tests := []struct {
		name    string
		cmd     []string
		ctxWait time.Duration
		in      io.Reader
		out     io.WriteCloser
		tty     bool
	}{
		{name: "context ends", cmd: []string{"sleep", "4325"}, ctxWait: 500 * time.Millisecond, out: &syncBuf{}},
		{name: "write fails", cmd: []string{"yes"}, out: failWriter{}},
		{name: "terminal input ends", cmd: []string{"sleep", "4326"}, in: strings.NewReader(""), out: &syncBuf{}, tty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if tt.ctxWait > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tt.ctxWait)
			}
			defer cancel()
			t0 := time.Now()
			err := containerStreamer{e.s}.ExecStream(ctx, id, tt.cmd, tt.in, tt.out, nil, tt.tty, nil)
			if err == nil {
				t.Error("exec of a killed process succeeded")
			}
			if d := time.Since(t0); d > 5*time.Second {
				t.Errorf("returned after %v", d)
			}
			if ps := e.pidnsProcs(id); len(ps) != 1 {
				t.Errorf("processes left in the container: %v", ps)
			}
		})
	}
}

func TestCheckStreamable(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pod1", "c1", nil, "sleep", "100")
	cs := containerStreamer{e.s}
	if err := cs.CheckStreamable(id); err == nil {
		t.Error("a created container is streamable")
	}
	if err := cs.CheckStreamable("nosuch"); err == nil {
		t.Error("an unknown container is streamable")
	}
	e.startC(t, id)
	if err := cs.CheckStreamable(id); err != nil {
		t.Error(err)
	}
}

// Attach joins the container's stdio through its monitor: input reaches
// the container, output comes back and is still logged, and with
// stdin_once the end of the client's input is the container's EOF.
func TestAttachStream(t *testing.T) {
	e := newEnv(t)
	resp, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{
		PodSandboxId: "pod1",
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "att"}, Image: &runtime.ImageSpec{Image: "busybox"},
			Command: []string{"sh", "-c", `while read l; do echo "got $l"; done; echo bye >&2`},
			Stdin:   true, StdinOnce: true, LogPath: "att.log"},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.ContainerId
	e.startC(t, id)
	inR, inW := io.Pipe()
	out, errw := &syncBuf{}, &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- containerStreamer{e.s}.AttachStream(context.Background(), id, inR, out, errw, false, nil)
	}()
	inW.Write([]byte("one\n"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "got one") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	inW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end when the container exited")
	}
	if out.String() != "got one\n" || errw.String() != "bye\n" {
		t.Errorf("stdout %q stderr %q", out, errw)
	}
	st := e.waitExited(t, id)
	b, _ := os.ReadFile(st.LogPath)
	if !strings.Contains(string(b), "stdout F got one") || !strings.Contains(string(b), "stderr F bye") {
		t.Errorf("log lost lines while attached:\n%s", b)
	}
}

// Exec and Attach check the request and the container before they hand
// out a URL.
func TestExecAttachRequestErrors(t *testing.T) {
	e := newEnv(t)
	e.s.streamer = containerStreamer{e.s}
	stop, err := e.s.startStreaming(config.Streaming{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	created := e.create(t, "pod1", "created", nil, "sleep", "100")
	running := e.create(t, "pod1", "running", nil, "sleep", "100")
	e.startC(t, running)
	tests := []struct {
		name string
		exec *runtime.ExecRequest
		att  *runtime.AttachRequest
		code codes.Code
	}{
		{name: "exec", exec: &runtime.ExecRequest{ContainerId: running, Cmd: []string{"true"}, Stdout: true}, code: codes.OK},
		{name: "exec unknown container", exec: &runtime.ExecRequest{ContainerId: "nosuch", Cmd: []string{"true"}, Stdout: true}, code: codes.NotFound},
		{name: "exec not running", exec: &runtime.ExecRequest{ContainerId: created, Cmd: []string{"true"}, Stdout: true}, code: codes.FailedPrecondition},
		{name: "exec empty cmd", exec: &runtime.ExecRequest{ContainerId: running, Stdout: true}, code: codes.InvalidArgument},
		{name: "exec tty with stderr", exec: &runtime.ExecRequest{ContainerId: running, Cmd: []string{"sh"}, Tty: true, Stdout: true, Stderr: true}, code: codes.InvalidArgument},
		{name: "exec no stream", exec: &runtime.ExecRequest{ContainerId: running, Cmd: []string{"true"}}, code: codes.InvalidArgument},
		{name: "attach", att: &runtime.AttachRequest{ContainerId: running, Stdout: true}, code: codes.OK},
		{name: "attach unknown container", att: &runtime.AttachRequest{ContainerId: "nosuch", Stdout: true}, code: codes.NotFound},
		{name: "attach not running", att: &runtime.AttachRequest{ContainerId: created, Stdout: true}, code: codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var url string
			var err error
			if tt.exec != nil {
				var r *runtime.ExecResponse
				if r, err = e.s.Exec(context.Background(), tt.exec); err == nil {
					url = r.Url
				}
			} else {
				var r *runtime.AttachResponse
				if r, err = e.s.Attach(context.Background(), tt.att); err == nil {
					url = r.Url
				}
			}
			if got := grpcerr.Code(err); got != tt.code {
				t.Fatalf("code %v, want %v (%v)", got, tt.code, err)
			}
			if err == nil && !strings.HasPrefix(url, "http://127.0.0.1:") {
				t.Errorf("url %q", url)
			}
		})
	}
}
