package cgroups

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Moving a process by writing its pid to cgroup.procs takes the kernel's
// global cgroup_threadgroup_rwsem for writing. That is a percpu rwsem, and
// its write side first waits for an RCU grace period: 5 to 15 ms on this
// machine kind, the largest single cost of starting a container. Two ways
// in avoid the lock:
//
//   - cgroup v2: clone3(CLONE_INTO_CGROUP) starts the child in the target
//     cgroup; fork only takes the lock's read side.
//   - cgroup v1: a thread that writes "0" (itself) into a hierarchy's
//     "tasks" file migrates only itself, and the kernel skips the global
//     lock for that case. A process with a single thread moves whole. The
//     container init does it in its C constructor, before the Go runtime
//     starts a second thread. The kernel checks the permission against the
//     credentials of whoever opened the file, so files the parent opened
//     work in a child that is already in a user namespace.
//
// runc writes cgroup.procs and pays the grace period on every create.

// ForkJoin is what a child needs to start inside a cgroup: see PrepareFork.
type ForkJoin struct {
	// CgroupFD is the v2 directory (pure v2, or the unified hierarchy of a
	// hybrid host) for clone3's CLONE_INTO_CGROUP, or -1.
	CgroupFD int
	// Tasks are the v1 hierarchies' "tasks" files opened for writing: the
	// child, while single-threaded, writes "0" into each.
	Tasks []*os.File
}

// Close releases the descriptors; call it once the child has started.
func (j *ForkJoin) Close() {
	if j == nil {
		return
	}
	if j.CgroupFD >= 0 {
		unix.Close(j.CgroupFD)
		j.CgroupFD = -1
	}
	for _, f := range j.Tasks {
		f.Close()
	}
	j.Tasks = nil
}

// ForkJoiner is implemented by this package's managers.
type ForkJoiner interface {
	// PrepareFork creates the cgroup(s), as Apply(0) does, and opens what a
	// child needs to join them as it starts. The caller closes the result;
	// Destroy removes what was created.
	PrepareFork() (*ForkJoin, error)
}

func (m *v1Manager) PrepareFork() (j *ForkJoin, err error) {
	if err := m.Apply(0); err != nil {
		return nil, err
	}
	j = &ForkJoin{CgroupFD: -1}
	defer func() {
		if err != nil {
			j.Close()
		}
	}()
	for _, dir := range m.sortedDirs() {
		p := filepath.Join(dir, "tasks")
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", p, classify(err))
		}
		j.Tasks = append(j.Tasks, f)
	}
	if m.unified != nil {
		if j.CgroupFD, err = openDir(m.unified.dir); err != nil {
			return nil, err
		}
	}
	return j, nil
}

func (m *v2Manager) PrepareFork() (*ForkJoin, error) {
	if err := m.Apply(0); err != nil {
		return nil, err
	}
	fd, err := openDir(m.dir)
	if err != nil {
		return nil, err
	}
	return &ForkJoin{CgroupFD: fd}, nil
}

func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", dir, classify(err))
	}
	return fd, nil
}
