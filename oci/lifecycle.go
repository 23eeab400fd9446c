package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/cgroups"
)

// Start releases a created container's init to exec the user's process. It
// may be called from any process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	t0 := time.Now()
	unlock, err := r.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := r.load(id)
	if err != nil {
		return err
	}
	if s := r.status(st); s != specs.StateCreated {
		return errdefs.FailedPrecondition("start container %s: it is %s", id, s)
	}
	fifo := filepath.Join(r.dir(id), fifoName)
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	if err := releaseInit(fifo, st, deadline); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	_ = os.Remove(fifo)
	if st.Spec.Hooks != nil {
		s := poststartState(r.ociState(st), st)
		if err := runHooksAll(ctx, "poststart", st.Spec.Hooks.Poststart, s); err != nil {
			r.log.Warn("poststart hook failed", "container", id, "err", err)
		}
	}
	r.log.Info("container started", "container", id, "pid", st.Pid, "took", time.Since(t0).Round(time.Microsecond).String())
	return nil
}

// poststartState is the state the poststart hooks get: "running" with the
// pid, as runc passes, even when a short process has exited by now (the
// hooks follow its start, not its life).
func poststartState(s *specs.State, st *containerState) *specs.State {
	s.Status, s.Pid = specs.StateRunning, st.Pid
	return s
}

// State returns the OCI state of a container.
func (r *Runtime) State(ctx context.Context, id string) (*specs.State, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	return r.ociState(st), nil
}

// List returns the ids of all containers in StateDir.
func (r *Runtime) List() ([]string, error) {
	ents, err := os.ReadDir(r.cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(r.cfg.StateDir, e.Name(), stateFile)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Kill sends sig to the init, or with all to every process of the container.
func (r *Runtime) Kill(ctx context.Context, id string, sig unix.Signal, all bool) error {
	st, err := r.load(id)
	if err != nil {
		return err
	}
	if !st.alive() {
		if all {
			return nil
		}
		return errdefs.FailedPrecondition("kill container %s: not running", id)
	}
	if all {
		mgr, err := r.newCgroup(st.CgroupsPath)
		if err != nil {
			return fmt.Errorf("open cgroup: %w", err)
		}
		if err := mgr.Kill(sig); err != nil {
			return fmt.Errorf("kill container %s: %w", id, err)
		}
	}
	if err := unix.Kill(st.Pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill container %s: %w", id, err)
	}
	return nil
}

// Delete removes a stopped (or created) container; force kills a running one
// first. Deleting an unknown id with force succeeds.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	t0 := time.Now()
	unlock, err := r.lock(id)
	if err != nil {
		if force && errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		return err
	}
	defer unlock()
	st, err := r.load(id)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			// A create that died before writing its state: its cgroup,
			// recorded ahead, may hold a half-made init.
			if err := r.destroyUncreated(ctx, id); err != nil {
				return fmt.Errorf("delete container %s: %w", id, err)
			}
			return os.RemoveAll(r.dir(id))
		}
		return err
	}
	s := r.status(st)
	if (s == specs.StateRunning || s == "paused") && !force {
		return errdefs.FailedPrecondition("delete container %s: it is %s", id, s)
	}
	mgr, err := r.newCgroup(st.CgroupsPath)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	if md, ok := mgr.(cgroups.MadeDirs); ok {
		md.Adopt(st.CgroupMade)
	}
	if s != specs.StateStopped {
		// Thaw even when not marked paused: a v1 freezer left FREEZING by a
		// failed pause holds SIGKILLed tasks forever.
		_ = mgr.Kill(unix.SIGKILL)
		_ = mgr.Thaw()
		_ = unix.Kill(st.Pid, unix.SIGKILL)
		if err := waitGone(ctx, st); err != nil {
			return fmt.Errorf("delete container %s: %w", id, err)
		}
	}
	if err := mgr.Destroy(); err != nil {
		return fmt.Errorf("destroy cgroup of %s: %w", id, err)
	}
	if st.Spec != nil && st.Spec.Hooks != nil {
		os := r.ociState(st)
		os.Status = specs.StateStopped
		if err := runHooksAll(ctx, "poststop", st.Spec.Hooks.Poststop, os); err != nil {
			r.log.Warn("poststop hook failed", "container", id, "err", err)
		}
	}
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return fmt.Errorf("remove state of %s: %w", id, err)
	}
	r.log.Info("container deleted", "container", id, "took", time.Since(t0).Round(time.Microsecond).String())
	return nil
}

// cgroupFile, in a container's state dir, names its cgroup from before the
// cgroup is made until the state is saved.
const cgroupFile = "cgroup"

// destroyUncreated kills what is in the cgroup of a create that died
// before saving its state, and removes the cgroup.
func (r *Runtime) destroyUncreated(ctx context.Context, id string) error {
	b, err := os.ReadFile(filepath.Join(r.dir(id), cgroupFile))
	if err != nil {
		return nil // died before making a cgroup
	}
	mgr, err := r.newCgroup(string(b))
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = mgr.Kill(unix.SIGKILL)
		_ = mgr.Thaw()
		err := mgr.Destroy()
		if err == nil {
			return nil
		}
		if cerr := ctxErr(ctx); cerr != nil {
			return cerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("destroy cgroup of a half-created container: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits for the init to exit (as a zombie or reaped); we may not be
// its parent, so a pidfd poll, not wait.
func waitGone(ctx context.Context, st *containerState) error {
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return nil // already reaped
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(10 * time.Second)
	for st.alive() {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("init did not exit after SIGKILL")
		}
		_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
	}
	return nil
}

// Pause freezes every process of the container.
func (r *Runtime) Pause(ctx context.Context, id string) error { return r.setPaused(id, true) }

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error { return r.setPaused(id, false) }

func (r *Runtime) setPaused(id string, pause bool) error {
	unlock, err := r.lock(id)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := r.load(id)
	if err != nil {
		return err
	}
	want := specs.StateRunning
	if !pause {
		want = "paused"
	}
	if s := r.status(st); s != want {
		return errdefs.FailedPrecondition("container %s is %s, not %s", id, s, want)
	}
	mgr, err := r.newCgroup(st.CgroupsPath)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	if pause {
		err = mgr.Freeze()
	} else {
		err = mgr.Thaw()
	}
	if err != nil {
		return fmt.Errorf("freeze container %s: %w", id, err)
	}
	st.Paused = pause
	return r.save(st)
}

// Update changes the resources of a running container.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	st, err := r.load(id)
	if err != nil {
		return err
	}
	if res == nil {
		return errdefs.InvalidArgument("update container %s: no resources", id)
	}
	mgr, err := r.newCgroup(st.CgroupsPath)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	if err := mgr.Set(res); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	return nil
}

// Pids lists the processes of a container (host pids).
func (r *Runtime) Pids(ctx context.Context, id string) ([]int, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	mgr, err := r.newCgroup(st.CgroupsPath)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	return mgr.Pids()
}

// releaseInit opens the exec fifo for reading, which completes the init's
// blocked open for writing, waits for its byte, then for EOF: the init's
// write end is close-on-exec, so EOF means the user's process is exec'd
// (or the init is gone). The open does not block, so an init that died
// cannot hang us; poll then waits without spinning: a FIFO that never had a
// writer does not report POLLHUP, so the first wait ends with the init's
// byte (POLLIN) or its death (POLLHUP, or the liveness check between
// slices).
func releaseInit(fifo string, st *containerState, deadline time.Time) error {
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1)
	released := false
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("wait on exec fifo: %w", err)
		}
		if n > 0 {
			m, err := unix.Read(fd, buf)
			if m == 1 {
				released = true
				continue
			}
			if err != nil && err != unix.EAGAIN && err != unix.EINTR {
				return fmt.Errorf("read exec fifo: %w", err)
			}
			if m == 0 && err == nil {
				if released {
					return nil
				}
				// The writer closed without writing: the init is gone.
				return errdefs.FailedPrecondition("init exited")
			}
		}
		if !st.alive() {
			if released {
				return nil // exec'd and already exited
			}
			return errdefs.FailedPrecondition("init exited")
		}
		if time.Now().After(deadline) {
			return errdefs.ErrDeadlineExceeded
		}
	}
}
