package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Spawn writes the bundle (cfg and spec), starts `exe monitor <bundle>` in
// its own session and waits until the container is created. The returned
// pid is the container init's. The monitor is reaped by a goroutine so that
// it never lingers as a zombie while the daemon lives; after the daemon dies
// init (or a subreaper) reaps it.
func Spawn(exe, bundle string, cfg Config, spec *specs.Spec) (pid int, err error) {
	if err := writeJSON(filepath.Join(bundle, ConfigFile), cfg); err != nil {
		return 0, err
	}
	if err := writeJSON(filepath.Join(bundle, SpecFile), spec); err != nil {
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
	var rd Ready
	if err := json.NewDecoder(r).Decode(&rd); err != nil {
		return 0, fmt.Errorf("monitor died before reporting: %w", err)
	}
	if rd.Error != "" {
		return 0, errors.New(rd.Error)
	}
	return rd.Pid, nil
}

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
