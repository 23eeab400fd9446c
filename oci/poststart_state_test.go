package oci

import (
	"os/exec"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The poststart hooks get "running" and the pid even when the process
// (here one already exited and reaped) is gone by the time they run:
// runtime-tools' hooks_stdin with "true" as the process, on a busy machine.
func TestPoststartStateOfAnExitedProcess(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{cfg: Config{StateDir: t.TempDir()}}
	st := &containerState{ID: "gone", Pid: cmd.Process.Pid, PidStart: 1, Bundle: "/b"}
	if s := r.ociState(st); s.Status != specs.StateStopped {
		t.Fatalf("state of an exited process: %s, want stopped", s.Status)
	}
	s := poststartState(r.ociState(st), st)
	if s.Status != specs.StateRunning || s.Pid != st.Pid || s.ID != "gone" || s.Bundle != "/b" {
		t.Fatalf("poststart state %+v, want running with pid %d", s, st.Pid)
	}
}
