package server

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs/grpcerr"
)

func TestExecSync(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	tests := []struct {
		name           string
		cmd            []string
		code           int32
		stdout, stderr string
		stdoutLen      int
	}{
		{name: "output and exit code", cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, code: 3, stdout: "out\n", stderr: "err\n"},
		{name: "container env and cwd", cmd: []string{"sh", "-c", "echo $FROM_SPEC $(pwd)"}, stdout: "yes /work\n"},
		{name: "killed by a signal", cmd: []string{"sh", "-c", "kill -9 $$"}, code: 137},
		{name: "output cut at the cap", cmd: []string{"sh", "-c", "yes 0123456789abcde | head -c 17825792"}, stdoutLen: execOutputCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := e.s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Cmd: tt.cmd, Timeout: 20})
			if err != nil {
				t.Fatal(err)
			}
			if r.ExitCode != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", r.ExitCode, tt.code, r.Stderr)
			}
			if tt.stdoutLen > 0 {
				if len(r.Stdout) != tt.stdoutLen {
					t.Errorf("stdout is %d bytes, want %d", len(r.Stdout), tt.stdoutLen)
				}
				return
			}
			if string(r.Stdout) != tt.stdout || string(r.Stderr) != tt.stderr {
				t.Errorf("stdout %q stderr %q, want %q %q", r.Stdout, r.Stderr, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestExecSyncErrors(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	exited := e.run(nil, "true")
	e.ctr[exited].Wait()
	e.s.ctrs.update(exited, func(st *containerStatus) error {
		st.State = runtime.ContainerState_CONTAINER_EXITED
		return nil
	})
	tests := []struct {
		name string
		req  *runtime.ExecSyncRequest
		code codes.Code
	}{
		{"unknown container", &runtime.ExecSyncRequest{ContainerId: "nosuch", Cmd: []string{"true"}}, codes.NotFound},
		{"empty cmd", &runtime.ExecSyncRequest{ContainerId: id}, codes.InvalidArgument},
		{"not running", &runtime.ExecSyncRequest{ContainerId: exited, Cmd: []string{"true"}}, codes.FailedPrecondition},
		{"no such binary", &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"/nosuch"}}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.s.ExecSync(context.Background(), tt.req)
			if got := grpcerr.Code(err); got != tt.code {
				t.Errorf("code %v, want %v (err %v)", got, tt.code, err)
			}
		})
	}
}

// An exec past its timeout is killed with its children, reaped, and
// answered DeadlineExceeded, which the kubelet reports as a timeout.
func TestExecSyncTimeoutKills(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	tests := []struct {
		name string
		cmd  []string
	}{
		{"plain", []string{"sleep", "4321"}},
		{"shell with a child", []string{"sh", "-c", "sleep 4322; echo done"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			_, err := e.s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Cmd: tt.cmd, Timeout: 1})
			if grpcerr.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("err %v (%v), want DeadlineExceeded", err, grpcerr.Code(err))
			}
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("returned after %v", d)
			}
			if ps := e.pidnsProcs(id); len(ps) != 1 {
				t.Errorf("processes left in the container: %v", ps)
			}
		})
	}
}

// A command that leaves a background child holding stdout open returns
// when the command exits, with what it wrote (containerd issue 9568).
func TestExecSyncBackgroundChildDoesNotHang(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	t0 := time.Now()
	r, err := e.s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"sh", "-c", "sleep 4323 & echo started"}, Timeout: 30})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if string(r.Stdout) != "started\n" || r.ExitCode != 0 {
		t.Errorf("stdout %q code %d", r.Stdout, r.ExitCode)
	}
}

// An exec has the container's restrictions: the same capability sets,
// no_new_privs and seccomp filter as the container's own process.
func TestExecSyncHasContainerRestrictions(t *testing.T) {
	e := newRealEnv(t)
	id := e.run(nil, "sleep", "1000")
	r, err := e.s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"cat", "/proc/self/status"}, Timeout: 10})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("exec: %v %+v", err, r)
	}
	initStatus, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.ctr[id].Pid))
	mustDo(t, err)
	for _, field := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"} {
		t.Run(field, func(t *testing.T) {
			re := regexp.MustCompile(`(?m)^` + field + `:\s*(\S+)$`)
			got, want := re.FindSubmatch(r.Stdout), re.FindSubmatch(initStatus)
			if got == nil || want == nil || string(got[1]) != string(want[1]) {
				t.Errorf("exec has %s %q, the container %q", field, got, want)
			}
		})
	}
	// The values are the restricted ones, not the host's.
	if !strings.Contains(string(r.Stdout), "Seccomp:\t2") || !strings.Contains(string(r.Stdout), "NoNewPrivs:\t1") {
		t.Errorf("exec runs without seccomp or no_new_privs:\n%s", r.Stdout)
	}
	if strings.Contains(string(r.Stdout), "CapBnd:\t000001ffffffffff") {
		t.Error("exec has the full bounding set")
	}
	// The seccomp profile really applies: mkdir is refused.
	r, err = e.s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"mkdir", "/tmp/x"}, Timeout: 10})
	if err != nil || r.ExitCode == 0 {
		t.Errorf("mkdir under the seccomp profile: err %v, %+v", err, r)
	}
}

// Probes of many containers run at once: concurrent execs each get their
// own output and exit code.
func TestExecSyncConcurrent(t *testing.T) {
	e := newRealEnv(t)
	ids := []string{e.run(nil, "sleep", "1000"), e.run(nil, "sleep", "1000")}
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			want := fmt.Sprintf("n%d", i)
			r, err := e.s.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: ids[i%2],
				Cmd: []string{"sh", "-c", "echo " + want + "; exit " + fmt.Sprint(i%3)}, Timeout: 20})
			switch {
			case err != nil:
				errs <- err
			case string(r.Stdout) != want+"\n" || r.ExitCode != int32(i%3):
				errs <- fmt.Errorf("exec %d: stdout %q code %d", i, r.Stdout, r.ExitCode)
			default:
				errs <- nil
			}
		}()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkExecSync is an exec probe: `true` in a running container.
func BenchmarkExecSync(b *testing.B) {
	e := newRealEnv(b)
	id := e.run(nil, "sleep", "1000")
	req := &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 10}
	for b.Loop() {
		if r, err := e.s.ExecSync(context.Background(), req); err != nil || r.ExitCode != 0 {
			b.Fatal(err, r)
		}
	}
}
