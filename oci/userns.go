package oci

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// unshareEnv carries nsPlan.unshare to the constructor (oci/nsenter/userns.c).
const unshareEnv = "_CRISERVER_UNSHARE"

// unshareAfterUserJoin moves the namespaces clone would make to the
// constructor, which makes them once it has joined the user namespace: a
// namespace belongs to the user namespace of its creator, and the
// container's root can mount proc only in a PID namespace, sysfs only in a
// network namespace, mqueue only in an IPC namespace its user namespace
// owns. runc's nsexec does the same (join first, then unshare).
func (p *nsPlan) unshareAfterUserJoin() {
	p.unshare, p.cloneFlags = p.cloneFlags, 0
}

// joinsUserNS says whether the spec joins a user namespace by path.
func joinsUserNS(l *specs.Linux) bool {
	for _, ns := range l.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path != "" {
			return true
		}
	}
	return false
}

// inUserNS says whether the container runs in a user namespace other than
// ours, new or joined: mknod is then refused and mount sources must be
// opened by the parent.
func inUserNS(l *specs.Linux) bool {
	for _, ns := range l.Namespaces {
		if ns.Type == specs.UserNamespace {
			return true
		}
	}
	return false
}

// adoptInit records the init the constructor forked into the container's
// new PID namespace (CLONE_PARENT: it is our child too). The pidfd is
// taken at once, while the process cannot have been reaped, so a recycled
// pid never stands in for it.
func (r *Runtime) adoptInit(st *containerState, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("init reported pid %d", pid)
	}
	st.Pid = pid
	st.PidStart = pidStart(pid)
	return nil
}

// settleAdopted reaps the first init, which exits once it has forked, and
// gives the adopted one what startInit gave the first: its cgroup (where
// the fork already put it unless the cgroup was joined after the start)
// and its oom_score_adj (written to the first perhaps after the fork).
// A setup error (err) is returned as is; on its own error it closes the
// console driveInit handed over.
func (r *Runtime) settleAdopted(err error, first *exec.Cmd, mgr CgroupManager, pid int, p *specs.Process, console *os.File) error {
	if err != nil {
		return err
	}
	if err = first.Wait(); err != nil {
		err = fmt.Errorf("fork init into its PID namespace: %w", err)
	} else if err = mgr.Apply(pid); err != nil {
		err = fmt.Errorf("join cgroup: %w", err)
	} else {
		err = setOOMScoreAdj(pid, p.OOMScoreAdj)
	}
	if err != nil && console != nil {
		console.Close()
	}
	return err
}

// killAdopted kills an adopted init on a failed create and reaps it.
func killAdopted(pid int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, 0, nil)
}

func newContainer(id string, pid int, console *os.File, cmd *exec.Cmd) *Container {
	c := &Container{ID: id, Pid: pid, Console: console, cmd: cmd}
	if pid != cmd.Process.Pid {
		c.cmd = nil
		c.adopted, _ = os.FindProcess(pid)
	}
	return c
}

func waitAdopted(p *os.Process) (ExitStatus, error) {
	ps, err := p.Wait()
	if err != nil {
		return ExitStatus{}, fmt.Errorf("wait process: %w", err)
	}
	return exitStatusOf(ps.Sys().(syscall.WaitStatus)), nil
}

// UserNS is a user namespace held open by a file descriptor.
type UserNS struct {
	File *os.File // /proc/<holder>/ns/user, opened
}

// Close releases the namespace (the kernel frees it with its last user).
func (u *UserNS) Close() error {
	if u == nil || u.File == nil {
		return nil
	}
	return u.File.Close()
}

// NewUserNS makes a user namespace with the given mappings, for idmapped
// mounts: a process of exe (this binary, which the constructor stops
// before the Go runtime starts) is cloned into it, its namespace opened,
// and the process killed.
func NewUserNS(exe string, uids, gids []specs.LinuxIDMapping) (*UserNS, error) {
	if len(uids) == 0 || len(gids) == 0 {
		return nil, errdefs.InvalidArgument("user namespace: uid and gid mappings are required")
	}
	cmd := &exec.Cmd{Path: exe, Args: []string{"cri-server", "userns-hold"}, Env: []string{holdEnv + "=1"},
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: idMaps(uids),
			GidMappings: idMaps(gids), GidMappingsEnableSetgroups: true, Pdeathsig: unix.SIGKILL}}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start user namespace holder: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("open user namespace: %w", err)
	}
	return &UserNS{File: f}, nil
}

// holdEnv makes the constructor hold its namespaces and wait to be killed.
const holdEnv = "_CRISERVER_HOLD"

// errNoIdmap is the class of a filesystem that cannot be idmapped.
var errNoIdmap = errors.New("idmapped mounts not supported")

// UserNSSupported says whether this kernel lets the runtime make user
// namespaces (user.max_user_namespaces is not 0) and idmapped mounts
// (mount_setattr exists). Where a filesystem cannot be idmapped, the
// container's create fails with its name.
func UserNSSupported() bool {
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil || len(b) == 0 || b[0] == '0' {
		return false
	}
	err = unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}

// rootByCwd hands the rootfs to an init that joins a user namespace and
// makes its mount namespace after the join as its working directory, set
// by the fork while it is still the host's root: as the namespace's root
// the init may not traverse the rootfs's path (a state dir is 0700), and
// unshare carries the working directory into the new mount namespace.
func rootByCwd(cmd *exec.Cmd, plan *nsPlan, rootfs string) bool {
	if plan.unshare&unix.CLONE_NEWNS == 0 {
		return false
	}
	cmd.Dir = rootfs
	return true
}

// rootFromCwd is the init's side of rootByCwd: a recursive copy of the
// working directory's tree is mounted on it (what the bind of the rootfs
// onto itself does otherwise) and becomes the working directory, and the
// rootfs is named by /proc/self/cwd from then on, which resolves without
// walking the host's path.
func rootFromCwd(cfg *initConfig) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, ".", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("clone rootfs: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, ".", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	if err := unix.Fchdir(tree); err != nil {
		return fmt.Errorf("enter rootfs: %w", err)
	}
	cfg.Rootfs = "/proc/self/cwd"
	return nil
}
