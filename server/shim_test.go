package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestShim runs containers through the monitor binary that New picks: the
// embedded shim sealed in a memfd (here the test binary stands in for it:
// it serves `monitor` too), or /proc/self/exe without one, as in a plain
// build. Either way a container must run, log and exit, and the monitor
// must be the binary chosen.
func TestShim(t *testing.T) {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		shim    []byte
		wantExe string // the monitor's /proc/<pid>/exe
	}{
		{name: "embedded shim", shim: self, wantExe: "/memfd:cri-server-shim (deleted)"},
		{name: "no shim", wantExe: mustReadlink(t, "/proc/self/exe")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), shimBin: tt.shim}
			exe, err := s.sealShim()
			if err != nil {
				t.Fatal(err)
			}
			// As New does: "" leaves the default.
			e.s.monitorExe, e.s.shim = exe, s.shim
			if exe == "" {
				e.s.monitorExe = "/proc/self/exe"
			} else if want := fmt.Sprintf("/proc/%d/fd/", os.Getpid()); !strings.HasPrefix(exe, want) {
				t.Fatalf("shim path %q, want under %s", exe, want)
			}
			id := e.create(t, "pod1", "c", nil, "/bin/sh", "-c", "exec sleep 100")
			bundle := filepath.Join(e.cfg.State, "containers", id)
			if got := mustReadlink(t, fmt.Sprintf("/proc/%d/exe", monitorPid(t, bundle))); got != tt.wantExe {
				t.Fatalf("monitor runs %q, want %q", got, tt.wantExe)
			}
			e.startC(t, id)
			if _, err := e.s.StopContainer(context.Background(), &runtime.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
				t.Fatal(err)
			}
			if st := e.waitExited(t, id); st.ExitCode != 137 {
				t.Fatalf("exit code %d, want 137", st.ExitCode)
			}
		})
	}
}

func TestShimClosed(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), shimBin: []byte("#!/bin/true\n")}
	exe, err := s.sealShim()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil || string(b) != "#!/bin/true\n" {
		t.Fatalf("sealed shim reads %q, %v", b, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(exe); err == nil {
		t.Fatal("the shim's memfd is still open after Close")
	}
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
