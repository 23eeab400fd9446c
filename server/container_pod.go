package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

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

// pidNamespace is the PID namespace a new container joins: the pod's shared
// one (POD), or the target container's (TARGET: the kubelet's ephemeral
// debug containers, which must see the process they debug). "" means a
// namespace of its own (CONTAINER) or, for NODE, the host's: the spec
// reads the mode itself.
func (s *Server) pidNamespace(cfg *runtime.ContainerConfig, pod *podInfo) (string, error) {
	opt := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if opt == nil {
		opt = pod.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	}
	switch opt.GetPid() {
	case runtime.NamespaceMode_POD:
		return pod.PIDNS, nil
	case runtime.NamespaceMode_TARGET:
	default:
		return "", nil
	}
	target := opt.GetTargetId()
	if target == "" {
		return "", errdefs.InvalidArgument("pid namespace mode TARGET needs target_id")
	}
	rec, _, err := s.ctrs.resolve(target)
	if err != nil {
		return "", fmt.Errorf("find target container: %w", err)
	}
	if rec.PodID != pod.ID {
		return "", errdefs.InvalidArgument("target container %s is not in pod %s", target, pod.ID)
	}
	st := rec.Status
	if st.State == runtime.ContainerState_CONTAINER_EXITED || st.Pid <= 0 {
		return "", errdefs.FailedPrecondition("target container %s is not running", target)
	}
	// The path names the init's namespace; the executor opens it at
	// create, so a target that exits meanwhile fails the create cleanly.
	return fmt.Sprintf("/proc/%d/ns/pid", st.Pid), nil
}
