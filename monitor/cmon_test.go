package monitor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/monitor"
)

// The tests of this file check what the C monitor (monitor/cmon, linked
// into this test binary as into the shim) must do on its own; the other
// tests of the package run against it too, and against the Go one with
// CRI_SERVER_GO_MONITOR=1.

func skipGo(t *testing.T) {
	if os.Getenv("CRI_SERVER_GO_MONITOR") == "1" {
		t.Skip("C monitor only")
	}
}

// rawCall sends one raw request line and returns the raw reply line.
func rawCall(t *testing.T, c ctr, req string) string {
	t.Helper()
	conn, err := net.Dial("unix", filepath.Join(c.bundle, monitor.SocketFile))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("request %.40q: no reply: %v", req, err)
	}
	return line
}

func TestCMonitorBadRequests(t *testing.T) {
	skipGo(t)
	c := spawn(t, "sleep", "100")
	for _, tc := range []struct {
		name, req, want string
	}{
		{name: "not json", req: "hello\n", want: "bad request"},
		{name: "unknown key", req: `{"op":"status","evil":1}` + "\n", want: "unknown key"},
		{name: "op not a string", req: `{"op":7}` + "\n", want: "bad request"},
		{name: "signal out of range", req: `{"op":"kill","signal":1000}` + "\n", want: "bad request"},
		{name: "trailing garbage", req: `{"op":"status"} x` + "\n", want: "bad request"},
		{name: "escape in op", req: `{"op":"st\u0061tus"}` + "\n", want: "bad request"},
		{name: "unknown op", req: `{"op":"explode"}` + "\n", want: `unknown op`},
		{name: "too long", req: `{"op":"` + strings.Repeat("a", 5000) + "\"}\n", want: "longer than"},
		{name: "nul bytes", req: "{\x00\x00}\n", want: "bad request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawCall(t, c, tc.req); !strings.Contains(got, `"error":`) || !strings.Contains(got, tc.want) {
				t.Fatalf("reply %q, want an error with %q", got, tc.want)
			}
		})
	}
	// A client that hangs up mid-request does not stop it either.
	if conn, err := net.Dial("unix", filepath.Join(c.bundle, monitor.SocketFile)); err == nil {
		conn.Write([]byte(`{"op":"sta`))
		conn.Close()
	}
	if r := call(t, c, monitor.OpStart); !r.Started {
		t.Fatalf("monitor unwell after bad requests: %+v", r)
	}
	if r := call(t, c, monitor.OpStatus); !r.Started || r.Exit != nil {
		t.Fatalf("status after bad requests: %+v", r)
	}
}

func TestCMonitorLongLinesSplit(t *testing.T) {
	skipGo(t)
	// 40000 bytes then a newline, then a last line without one.
	c := spawn(t, "/bin/sh", "-c", `head -c 40000 /dev/zero | tr '\0' a; echo; printf 'x\r\ny'`)
	call(t, c, monitor.OpStart)
	if r := call(t, c, monitor.OpWait); r.Exit.Code != 0 {
		t.Fatalf("exit %+v", r.Exit)
	}
	got := logLines(t, c.log)
	want := []string{
		"stdout P " + strings.Repeat("a", monitor.MaxLineSize),
		"stdout P " + strings.Repeat("a", monitor.MaxLineSize),
		"stdout F " + strings.Repeat("a", 40000-2*monitor.MaxLineSize),
		"stdout F x",
		"stdout F y",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		for i := range got {
			got[i] = fmt.Sprintf("%.12s.. (%d)", got[i], len(got[i]))
		}
		t.Fatalf("log %q", got)
	}
}

func TestCMonitorReopenDuringOutputLosesNothing(t *testing.T) {
	skipGo(t)
	const n = 1000000
	c := spawn(t, "seq", "1", strconv.Itoa(n))
	call(t, c, monitor.OpStart)
	var files []string
	for i := 0; i < 500 && !monitor.HasExit(c.bundle); i++ {
		f := fmt.Sprintf("%s.%d", c.log, i)
		if err := os.Rename(c.log, f); err == nil {
			files = append(files, f)
		}
		monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpReopenLog})
		time.Sleep(2 * time.Millisecond)
	}
	if r := call(t, c, monitor.OpWait); r.Exit.Code != 0 {
		t.Fatalf("exit %+v", r.Exit)
	}
	if len(files) < 2 {
		t.Fatalf("rotated %d times only: the test saw no reopen during output", len(files))
	}
	var all []string
	for _, f := range append(files, c.log) {
		if _, err := os.Stat(f); err == nil {
			all = append(all, logLines(t, f)...)
		}
	}
	if len(all) != n {
		t.Fatalf("%d lines across %d files, want %d", len(all), len(files)+1, n)
	}
	for i, l := range all {
		if l != "stdout F "+strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q", i, l)
		}
	}
}

func TestCMonitorLeaksNoFdIntoContainer(t *testing.T) {
	skipGo(t)
	// An fd the daemon forgot to mark close-on-exec.
	fd, err := unix.Open(os.DevNull, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	c := spawn(t, "/bin/sh", "-c", "ls /proc/self/fd")
	call(t, c, monitor.OpStart)
	if r := call(t, c, monitor.OpWait); r.Exit.Code != 0 {
		t.Fatalf("exit %+v", r.Exit)
	}
	var fds []string
	for _, l := range logLines(t, c.log) {
		fds = append(fds, strings.TrimPrefix(l, "stdout F "))
	}
	// 0-2 are the stdio, 3 is ls's own listing.
	if strings.Join(fds, " ") != "0 1 2 3" {
		t.Fatalf("the container has fds %v (the daemon's stray fd is %d)", fds, fd)
	}
}

// A start with poststart hooks is the executor's (a Go helper of the C
// monitor); so is a kill of every process.
func TestCMonitorStartAndKillByHelper(t *testing.T) {
	skipGo(t)
	dir := t.TempDir()
	c := ctr{bundle: filepath.Join(dir, "b"), log: filepath.Join(dir, "c.log")}
	os.Mkdir(c.bundle, 0o700)
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sh", "-c", "echo up; exec sleep 100"}},
		Hooks: &specs.Hooks{Poststart: []specs.Hook{{Path: "/bin/true"}}}}
	if _, err := monitor.Spawn(context.Background(), os.Args[0], c.bundle, monitor.Config{ID: "c1", LogPath: c.log, OCIStateDir: c.bundle}, spec); err != nil {
		t.Fatal(err)
	}
	if r := call(t, c, monitor.OpStart); !r.Started {
		t.Fatalf("start: %+v", r)
	}
	for i := 0; i < 500 && len(logLines(t, c.log)) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpKill, Signal: 9, All: true}); err != nil {
		t.Fatal(err)
	}
	r := call(t, c, monitor.OpWait)
	if r.Exit == nil || r.Exit.Code != 137 || r.Exit.Signal != 9 {
		t.Fatalf("exit %+v", r.Exit)
	}
	if got := logLines(t, c.log); len(got) != 1 || got[0] != "stdout F up" {
		t.Fatalf("log %q", got)
	}
}

// A monitor with every connection slot taken keeps a new caller waiting
// until one frees, rather than hanging up on it (a caller would take that
// for a dead monitor).
func TestCMonitorFullWaitsNotHangsUp(t *testing.T) {
	skipGo(t)
	c := spawn(t, "sleep", "100")
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for len(conns) < 64 {
		cn, err := net.Dial("unix", filepath.Join(c.bundle, monitor.SocketFile))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
	}
	done := make(chan error, 1)
	go func() {
		_, err := monitor.Call(context.Background(), c.bundle, monitor.Request{Op: monitor.OpStatus})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("status answered with every slot taken: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	conns[0].Close()
	conns = conns[1:]
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("status once a slot freed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("status not answered once a slot freed")
	}
}

// A create helper that dies after making the init leaves no process: the
// C monitor, its subreaper, kills what it adopted before it reports.
func TestCMonitorCreateCrashLeavesNoProcess(t *testing.T) {
	skipGo(t)
	dir := t.TempDir()
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"/crash-create"}}}
	_, err := monitor.Spawn(context.Background(), os.Args[0], dir, monitor.Config{ID: "x", OCIStateDir: dir}, spec)
	if err == nil || !strings.Contains(err.Error(), "create helper failed") {
		t.Fatalf("crashed create reported as %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "x", "pid"))
	if err != nil {
		t.Fatalf("the stand-in made no init: %v", err)
	}
	pid, _ := strconv.Atoi(string(data))
	if err := unix.Kill(pid, 0); err != unix.ESRCH {
		t.Fatalf("init %d of the crashed create still there: %v", pid, err)
	}
	if _, err := os.Stat(filepath.Join(dir, monitor.SocketFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("failed monitor left a socket")
	}
}
