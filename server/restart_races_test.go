package server

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A child of a daemon killed -9 between fork and exec holds the state
// lock's open file for a moment: the next start waits it out instead of
// failing.
func TestLockWaitsForLingeringHolder(t *testing.T) {
	dir := t.TempDir()
	held, err := os.OpenFile(filepath.Join(dir, "cri-server.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		held.Close()
	}()
	f, err := lockState(dir)
	if err != nil {
		t.Fatalf("lock after the holder let go: %v", err)
	}
	f.Close()
}

// The start-up sweep kills a monitor of an orphan bundle even before it
// serves its socket (a daemon killed during CreateContainer), and only
// that bundle's.
func TestKillMonitorsOfOrphanBundle(t *testing.T) {
	bin := t.TempDir()
	// Stand-ins whose argv is "<exe> monitor <bundle>", as a monitor's is.
	if err := os.WriteFile(filepath.Join(bin, "monitor"), []byte("sleep 100\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(bundle string) *exec.Cmd {
		cmd := exec.Command("/bin/sh", "monitor", bundle)
		cmd.Dir = bin
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		return cmd
	}
	orphan, other := filepath.Join(bin, "orphan"), filepath.Join(bin, "other")
	o, k := start(orphan), start(other)
	waited := make(chan error, 1)
	go func() { waited <- o.Wait() }()
	killMonitorsOf(orphan)
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatalf("the orphan bundle's monitor %d still runs", o.Process.Pid)
	}
	if err := k.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("another bundle's monitor was killed: %v", err)
	}
	syscall.Kill(-k.Process.Pid, syscall.SIGKILL)
	k.Wait()
}
