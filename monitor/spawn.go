package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Spawn writes the bundle (cfg and spec), starts `exe monitor <bundle>` in
// its own session and waits until the container is created. The returned
// pid is the container init's. The monitor is reaped by a goroutine so that
// it never lingers as a zombie while the daemon lives; after the daemon dies
// init (or a subreaper) reaps it.
//
// If ctx ends (or readyTimeout passes) before the monitor reports, the
// monitor is killed: a create never hangs on a stuck child.
func Spawn(ctx context.Context, exe, bundle string, cfg Config, spec *specs.Spec) (pid int, err error) {
	if err := writeJSON(filepath.Join(bundle, ConfigFile), cfg); err != nil {
		return 0, err
	}
	if err := writeJSON(filepath.Join(bundle, SpecFile), spec); err != nil {
		return 0, err
	}
	if err := writeCConfig(bundle, cfg, spec.Process != nil && spec.Process.Terminal); err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create ready pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, "monitor", bundle)
	cmd.ExtraFiles = []*os.File{w}
	// Setsid: a new session and process group, so that a signal to the
	// daemon's group (a terminal's ^C, kill -9 of the group) spares it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = bundle
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start monitor: %w", err)
	}
	w.Close()
	go cmd.Wait()
	deadline := time.Now().Add(readyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	r.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { r.SetReadDeadline(time.Now()) })
	defer stop()
	var rd Ready
	if err := json.NewDecoder(r).Decode(&rd); err != nil {
		// Kill the whole session: the monitor and whatever it created.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return 0, fmt.Errorf("monitor did not report: %w", err)
	}
	if rd.Error != "" {
		return 0, errors.New(rd.Error)
	}
	return rd.Pid, nil
}

// readyTimeout bounds a create in the monitor (image mounts and namespace
// joins are done before; this is the executor's create alone).
const readyTimeout = 60 * time.Second

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
