package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cri-server/cri-server/errdefs"
)

// StopPodContainers stops every container of a pod (StopPodSandbox). It is
// the hook the sandbox side calls; the lead wires it to the pods engineer's
// hook interface at merge.
func (s *Server) StopPodContainers(ctx context.Context, podID string, timeout time.Duration) error {
	// All at once: a pod's stop takes its slowest container's time, not
	// the sum.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, rec := range s.ctrs.list() {
		if rec.PodID != podID {
			continue
		}
		_, c, err := s.ctrs.get(rec.ID)
		if err != nil {
			continue
		}
		wg.Go(func() {
			if err := s.stop(ctx, rec, c, timeout); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stop container %s: %w", rec.ID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RemovePodContainers kills and removes every container of a pod
// (RemovePodSandbox).
func (s *Server) RemovePodContainers(ctx context.Context, podID string) error {
	var errs []error
	for _, rec := range s.ctrs.list() {
		if rec.PodID != podID {
			continue
		}
		_, c, err := s.ctrs.get(rec.ID)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err := s.stop(ctx, rec, c, 0); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.removeContainer(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
