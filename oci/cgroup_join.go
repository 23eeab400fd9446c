package oci

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci/cgroups"
)

// cgroupFdsEnv names the v1 "tasks" fds the oci/nsenter constructor writes
// "0" into (see oci/cgroups.ForkJoin for why the child joins by itself).
const cgroupFdsEnv = "_CRISERVER_CGROUP_FDS"

// forkJoiner is the optional part of a CgroupManager that lets a child be
// born in the cgroup; oci/cgroups' managers have it, test fakes need not.
type forkJoiner interface {
	PrepareFork() (*cgroups.ForkJoin, error)
}

// joinAtFork creates mgr's cgroup and sets cmd up so that its child starts
// inside it. It returns nil when the child cannot (a manager without
// PrepareFork, a kernel without CLONE_INTO_CGROUP): the caller then moves
// the pid with Apply after the start. The caller closes the result once the
// child has started.
func joinAtFork(mgr CgroupManager, cmd *exec.Cmd) (*cgroups.ForkJoin, error) {
	j, err := prepareJoin(mgr)
	if j == nil || err != nil {
		return j, err
	}
	if j.CgroupFD >= 0 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = j.CgroupFD
	}
	fds := make([]string, 0, len(j.Tasks))
	for _, f := range j.Tasks {
		fds = append(fds, strconv.Itoa(3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	if len(fds) > 0 {
		cmd.Env = append(cmd.Env, cgroupFdsEnv+"="+strings.Join(fds, ","))
	}
	return j, nil
}

// prepareJoin is joinAtFork without the command: the cgroup made and
// opened for a child to be born in (CgroupFD, -1 when clone3 cannot take
// it) and to join (Tasks), or nil when it cannot.
func prepareJoin(mgr CgroupManager) (*cgroups.ForkJoin, error) {
	fj, ok := mgr.(forkJoiner)
	if !ok {
		return nil, nil
	}
	j, err := fj.PrepareFork()
	if err != nil {
		return nil, err
	}
	if j.CgroupFD >= 0 && !cloneIntoCgroupWorks() {
		j.Close()
		return nil, nil
	}
	return j, nil
}

var (
	cloneIntoOnce sync.Once
	cloneIntoOK   bool
)

// cloneIntoCgroupWorks probes clone3(CLONE_INTO_CGROUP) (Linux 5.7) without
// creating a process: with a descriptor that cannot be open the kernel
// answers EBADF when it knows the flag, EINVAL when it does not, and ENOSYS
// (or a seccomp filter's EPERM) without clone3. The fd is checked before the
// child could ever run; CLONE_VM spares copying our address space for it.
func cloneIntoCgroupWorks() bool {
	cloneIntoOnce.Do(func() {
		args := struct {
			flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
		}{flags: unix.CLONE_VM | unix.CLONE_INTO_CGROUP, exitSignal: uint64(unix.SIGCHLD), cgroup: 1<<31 - 1}
		_, _, errno := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
		cloneIntoOK = errno == unix.EBADF
	})
	return cloneIntoOK
}

// applyUnlessJoined moves pid into mgr's cgroup when the child did not join
// at fork.
func applyUnlessJoined(mgr CgroupManager, j *cgroups.ForkJoin, pid int) error {
	if j != nil {
		return nil
	}
	if err := mgr.Apply(pid); err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	return nil
}
