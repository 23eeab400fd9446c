package oci_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A create killed after making the cgroup but before saving its state (the
// monitor running it killed -9): Delete with force still kills the
// half-made init and removes its cgroup, which it finds by the path
// recorded ahead. The leak check fails the test otherwise.
func TestDeleteHalfCreated(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := baseSpec(root, "sleep", "100")
	spec.Linux.CgroupsPath = e.cg + "/half"
	c, err := e.rt.Create(ctx, "half", spec, IOnull())
	must(t, err)
	// What a create that died before its last step leaves: no state.
	must(t, os.Remove(filepath.Join(e.dir, "state", "half", "state.json")))
	if err := e.rt.Delete(ctx, "half", true); err != nil {
		t.Fatalf("delete of a half-created container: %v", err)
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		if ws, err := c.Wait(); err != nil || ws.ExitCode() != 137 {
			t.Errorf("half-made init: %+v %v, want killed", ws, err)
		}
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		syscall.Kill(c.Pid, syscall.SIGKILL)
		<-waited
		t.Fatal("the half-made init was not killed by Delete")
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state", "half")); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
}
