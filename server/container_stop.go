package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
)

// killGrace bounds the wait for SIGKILL to be reaped; past it the
// container is unkillable (D state) and the kubelet is told so.
const killGrace = 10 * time.Second

// StopContainer sends the stop signal, then SIGKILL when the timeout (in
// seconds) passes; 0 kills at once. Stopping an exited or unknown
// container is not an error: the kubelet retries stops freely.
func (s *Server) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	rec, c, err := s.ctrs.resolve(r.GetContainerId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtime.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stop(ctx, rec, c, time.Duration(r.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

func (s *Server) stop(ctx context.Context, rec *containerRecord, c *container, timeout time.Duration) error {
	if rec.Status.State == runtime.ContainerState_CONTAINER_EXITED {
		return nil
	}
	if timeout > 0 && rec.Status.State == runtime.ContainerState_CONTAINER_RUNNING {
		sig := unix.Signal(rec.StopSignal)
		if sig == 0 {
			sig = unix.SIGTERM
		}
		s.log.Info("stopping container", "container", rec.ID, "signal", sig.String(), "timeout", timeout)
		if err := s.kill(ctx, rec, sig, false); err != nil {
			return err
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-c.exited:
			return nil
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.log.Info("killing container", "container", rec.ID)
	if err := s.kill(ctx, rec, unix.SIGKILL, true); err != nil {
		return err
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(killGrace):
		return errdefs.New(errdefs.ErrDeadlineExceeded, "container %s did not exit %s after SIGKILL", rec.ID, killGrace)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kill signals through the monitor. A monitor that is gone has reaped its
// container (or died): the watcher records that, so it is not an error.
func (s *Server) kill(ctx context.Context, rec *containerRecord, sig unix.Signal, all bool) error {
	_, err := monitor.Call(ctx, rec.Bundle, monitor.Request{Op: monitor.OpKill, Signal: int(sig), All: all})
	switch {
	case err == nil, errors.Is(err, monitor.ErrGone):
		return nil
	case strings.HasSuffix(err.Error(), ": not running"), strings.HasSuffix(err.Error(), unix.ESRCH.Error()):
		// The init exited between our state and the signal (in a shared
		// PID namespace the pod can end it first; an OOM kill can too):
		// the monitor records the exit, so a stop of an exited container
		// succeeds, as the CRI asks.
		return nil
	}
	return fmt.Errorf("signal container %s: %w", rec.ID, err)
}
