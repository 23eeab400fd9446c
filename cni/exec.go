package cni

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/invoke"
	"golang.org/x/sys/unix"
)

// pluginExec runs the plugins as libcni does, each at the manager's
// niceness. Under a burst of pod starts the plugins saturate the CPU; at
// the daemon's own priority they would leave it only its fair share beside
// dozens of plugin processes, and the next RunPodSandbox would wait for
// the CPU before it could even start its ADD.
type pluginExec struct {
	invoke.DefaultExec
	nice int
}

func newPluginExec(nice int) *pluginExec {
	return &pluginExec{DefaultExec: invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}, nice: nice}
}

// ExecPlugin runs the plugin from a thread locked for the purpose, made
// nicer for the plugin to inherit (Linux keeps niceness per thread) and
// put back before the thread returns to the Go scheduler. A thread whose
// niceness cannot be put back is left locked, so that the runtime ends it
// with this goroutine and no other goroutine ever runs on it.
func (e *pluginExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	if e.nice == 0 {
		return e.RawExec.ExecPlugin(ctx, path, stdin, env)
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The raw syscall value is 20 - niceness.
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get niceness: %w", err)}
			return
		}
		own := 20 - prio
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, min(own+e.nice, 19)); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("set plugin niceness: %w", err)}
			return
		}
		out, err := e.RawExec.ExecPlugin(ctx, path, stdin, env)
		if unix.Setpriority(unix.PRIO_PROCESS, 0, own) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{out, err}
	}()
	r := <-done
	return r.out, r.err
}
