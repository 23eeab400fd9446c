package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs hooks in order with the container state on stdin; the first
// failure stops the chain (runtime-spec: prestart, createRuntime,
// createContainer and startContainer failures fail the operation).
func runHooks(ctx context.Context, phase string, hooks []specs.Hook, s *specs.State) error {
	return runHookList(ctx, phase, hooks, s, false)
}

// runHooksAll runs every hook even when one fails and returns the failures
// joined: a failed poststart or poststop hook is a warning, and "the
// remaining hooks and lifecycle continue as if the hook had succeeded"
// (runtime-spec, lifecycle).
func runHooksAll(ctx context.Context, phase string, hooks []specs.Hook, s *specs.State) error {
	return runHookList(ctx, phase, hooks, s, true)
}

func runHookList(ctx context.Context, phase string, hooks []specs.Hook, s *specs.State, all bool) error {
	if len(hooks) == 0 {
		return nil
	}
	state, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode state for %s hooks: %w", phase, err)
	}
	var errs []error
	for i, h := range hooks {
		if err := runHook(ctx, h, state); err != nil {
			err = fmt.Errorf("run %s hook %d (%s): %w", phase, i, h.Path, err)
			if !all {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func runHook(ctx context.Context, h specs.Hook, state []byte) error {
	if h.Timeout != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = h.Args
	if len(cmd.Args) == 0 {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
