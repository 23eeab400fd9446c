package monitor

import (
	"context"
	"log/slog"
	"os"

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
	return ociExecutor{rt}, nil
}

type ociExecutor struct{ rt *oci.Runtime }

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
