package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
)

// OCIExecutor runs the monitor's container with cri-server's own executor.
// main.go sets NewExecutor to it.
func OCIExecutor(cfg Config, log *slog.Logger) (Executor, error) {
	rt, err := oci.New(oci.Config{StateDir: cfg.OCIStateDir, Logger: log})
	if err != nil {
		return nil, err
	}
	return ociExecutor{rt: rt, stateDir: cfg.OCIStateDir}, nil
}

type ociExecutor struct {
	rt       *oci.Runtime
	stateDir string
}

func (e ociExecutor) Create(ctx context.Context, id string, spec *specs.Spec, io IO) (Process, error) {
	c, err := e.rt.Create(ctx, id, spec, oci.IO{Stdin: io.Stdin, Stdout: io.Stdout, Stderr: io.Stderr})
	if err != nil {
		return nil, err
	}
	return ociProcess{c}, nil
}

func (e ociExecutor) Start(ctx context.Context, id string) error { return e.rt.Start(ctx, id) }

func (e ociExecutor) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	return e.rt.Kill(ctx, id, sig, all)
}

func (e ociExecutor) OOMKillCount(ctx context.Context, id string) (uint64, error) {
	st, err := e.rt.Stats(ctx, id)
	if err != nil {
		return 0, err
	}
	return st.Memory.OOMKills, nil
}

type ociProcess struct{ c *oci.Container }

func (p ociProcess) Pid() int          { return p.c.Pid }
func (p ociProcess) Console() *os.File { return p.c.Console }
func (p ociProcess) Wait() (ExitStatus, error) {
	return p.c.Wait()
}

// execFifoName is oci's exec fifo in its state dir (oci/state.go): its
// Start releases the init by reading a byte from it. Should the name
// drift, the C monitor finds no fifo and falls back to Start.
const execFifoName = "exec.fifo"

// ExecFifo lets the C monitor start the container itself, without a Go
// helper, unless the spec has poststart hooks (which Start runs).
func (e ociExecutor) ExecFifo(id string, spec *specs.Spec) string {
	if spec.Hooks != nil && len(spec.Hooks.Poststart) > 0 {
		return ""
	}
	return filepath.Join(e.stateDir, id, execFifoName)
}

// OOMFile names the file holding the oom_kill counter of pid's memory
// cgroup: v1 memory.oom_control, else v2 memory.events (pure or hybrid).
func (e ociExecutor) OOMFile(id string, pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	var v2 string
	for _, l := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "memory") {
			if p := filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.oom_control"); exists(p) {
				return p
			}
		}
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if p := filepath.Join(root, v2, "memory.events"); v2 != "" && exists(p) {
			return p
		}
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
