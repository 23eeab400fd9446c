package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// createFast is the rest of CreateBundle with the fast init (fastinit.c):
// the same steps and state, the init forked instead of re-executed. Each
// step appends its undo to *undo, which the caller runs on error.
func (r *Runtime) createFast(ctx context.Context, id, bundle string, spec *specs.Spec, stdio IO, in *createInputs,
	dir, cgPath string, mgr CgroupManager, ph *phases, undo *[]func()) (*Container, error) {
	ph.fast = true
	pid, parent, plan, err := r.forkInit(in, spec, stdio, dir, mgr, ph)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cgPath, err)
	}
	defer parent.Close()
	proc, err := os.FindProcess(pid)
	if err != nil { // cannot happen on Linux: FindProcess always succeeds
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		plan.free()
		return nil, fmt.Errorf("find init: %w", err)
	}
	*undo = append(*undo, func() { _ = proc.Kill(); _, _ = proc.Wait(); plan.free() })
	if err := setOOMScoreAdj(pid, spec.Process.OOMScoreAdj); err != nil {
		return nil, err
	}
	ph.mark(&ph.cgroup)
	stop := context.AfterFunc(ctx, func() { _ = proc.Kill() })
	defer stop()
	st := &containerState{
		ID: id, Pid: pid, PidStart: pidStart(pid), Bundle: bundle, Rootfs: in.rootfs,
		Created: time.Now().UTC(), CgroupsPath: cgPath, Spec: spec, Annotations: spec.Annotations, raw: in.raw,
	}
	console, it, err := r.driveInit(ctx, parentConn(parent), &initConfig{ID: id, Spec: spec}, false, st)
	if errors.Is(err, errInitExited) {
		// Say how it died: the undo's Kill finds it gone either way.
		if ps, werr := proc.Wait(); werr == nil {
			return nil, fmt.Errorf("%w (%s)", err, ps)
		}
	}
	if err != nil {
		return nil, err
	}
	ph.init(it)
	return r.finishCreate(id, pid, st, mgr, spec, console, ph, func(c *Container) { c.adopted, c.plan = proc, plan })
}

// forkInit starts the fast init in mgr's cgroup and returns its pid and
// the parent's end of the sync socket. On error no child is left.
// The plan is the caller's to free once the child is reaped.
func (r *Runtime) forkInit(in *createInputs, spec *specs.Spec, stdio IO, dir string, mgr CgroupManager, ph *phases) (_ int, _ *os.File, _ *cPlan, retErr error) {
	var closeAfter []int // ours to close once the child has its copies
	defer func() {
		for _, fd := range closeAfter {
			unix.Close(fd)
		}
	}()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("create sync socket: %w", err)
	}
	closeAfter = append(closeAfter, sp[1])
	// Non-blocking, so that os.NewFile makes it pollable (parentConn).
	if err := unix.SetNonblock(sp[0], true); err != nil {
		unix.Close(sp[0])
		return 0, nil, nil, fmt.Errorf("create sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(sp[0]), "sync-parent")
	defer func() {
		if retErr != nil {
			parent.Close()
		}
	}()
	fds := fastFds{sync: sp[1], cgroup: -1}
	if fds.state, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return 0, nil, nil, fmt.Errorf("open state dir: %w", err)
	}
	closeAfter = append(closeAfter, fds.state)
	if fds.stdio, err = stdioFds(stdio, &closeAfter); err != nil {
		return 0, nil, nil, err
	}
	j, err := prepareJoin(mgr)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("create: %w", err)
	}
	defer j.Close()
	cloneFlags, newCgroupNS := in.plan.cloneFlags, false
	if j != nil {
		fds.cgroup = j.CgroupFD
		for _, f := range j.Tasks {
			fds.tasks = append(fds.tasks, int(f.Fd()))
		}
		if cloneFlags&unix.CLONE_NEWCGROUP != 0 {
			// Rooted at the container's cgroup, which the child enters
			// first (runc's order).
			cloneFlags &^= unix.CLONE_NEWCGROUP
			newCgroupNS = true
		}
	}
	ph.mark(&ph.cgroup)
	plan, err := buildFastPlan(in, spec, mgr.Paths(), fds, cloneFlags, newCgroupNS)
	if err != nil {
		return 0, nil, nil, err
	}
	var pid int
	err = startIn(in.plan.thread, func() (err error) {
		pid, err = forkFastInit(plan)
		return err
	})
	runtime.KeepAlive(stdio)
	runtime.KeepAlive(j)
	if err != nil {
		plan.free()
		return 0, nil, nil, fmt.Errorf("start init: %w", err)
	}
	ph.mark(&ph.clone)
	if err := applyUnlessJoined(mgr, j, pid); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		plan.free()
		return 0, nil, nil, err
	}
	return pid, parent, plan, nil
}

// stdioFds are the descriptors of the container's stdio, /dev/null for a
// nil file, each at 3 or above so that the child's dup2 onto 0-2 cannot
// overwrite one before it is used.
func stdioFds(stdio IO, closeAfter *[]int) ([3]int, error) {
	var out [3]int
	null := -1
	for i, f := range []*os.File{stdio.Stdin, stdio.Stdout, stdio.Stderr} {
		fd := -1
		if f != nil {
			fd = int(f.Fd())
		} else {
			if null < 0 {
				var err error
				if null, err = unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
					return out, fmt.Errorf("open /dev/null: %w", err)
				}
				*closeAfter = append(*closeAfter, null)
			}
			fd = null
		}
		if fd < 3 {
			d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				return out, fmt.Errorf("dup stdio: %w", err)
			}
			*closeAfter = append(*closeAfter, d)
			fd = d
		}
		out[i] = fd
	}
	return out, nil
}
