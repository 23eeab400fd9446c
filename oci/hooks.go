package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs hooks in order with the container state on stdin; the first
// failure stops the chain (runtime-spec: fail the operation).
func runHooks(ctx context.Context, phase string, hooks []specs.Hook, s *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	state, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode state for %s hooks: %w", phase, err)
	}
	for i, h := range hooks {
		hctx := ctx
		if h.Timeout != nil {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
			defer cancel()
		}
		cmd := exec.CommandContext(hctx, h.Path)
		cmd.Args = h.Args
		if len(cmd.Args) == 0 {
			cmd.Args = []string{h.Path}
		}
		cmd.Env = h.Env
		cmd.Stdin = bytes.NewReader(state)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("run %s hook %d (%s): %w: %s", phase, i, h.Path, err, bytes.TrimSpace(out.Bytes()))
		}
	}
	return nil
}
