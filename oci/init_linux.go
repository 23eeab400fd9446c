package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci/seccomp"
)

// InitMain is the container init: the binary re-executed with the argument
// "init". It never returns.
func InitMain() {
	// Capabilities, no_new_privs and seccomp are per thread: everything
	// happens on this one, which is also the one that execs.
	runtime.LockOSThread()
	initMain()
}

// InitMainFromInit is InitMain for a caller in package init (the main
// package's), where the Go runtime already keeps the goroutine on the main
// thread until init ends, which it never does here: runtime.LockOSThread
// would also start the runtime's template thread, one more thread to make
// at start and for the exec to end (de_thread waits for each).
func InitMainFromInit() { initMain() }

func initMain() {
	times.Main = time.Now().UnixNano()
	// Read by the runtime at start; set by initCmd for this process only.
	os.Unsetenv(initMaxProcsEnv)
	// Nothing we inherited beyond stdio may survive the exec (CVE-2024-21626).
	_ = unix.CloseRange(initSyncFd, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	conn := syncConn{fd: initSyncFd}
	err := runInit(conn)
	if err == nil {
		err = errors.New("init: exec returned")
	}
	if serr := conn.send(&syncMsg{Type: msgError, Error: toInitError(err)}); serr != nil {
		// The parent is gone (we were already started): stderr is all we have.
		fmt.Fprintf(os.Stderr, "cri-server init: %v\n", err)
	}
	os.Exit(127)
}

// initMaxProcsEnv is the Go runtime's GOMAXPROCS, which initCmd sets to 1.
const initMaxProcsEnv = "GOMAXPROCS"

// times is filled as the init goes and sent with msgReady.
var times initTimes

func runInit(conn syncConn) error {
	m, err := conn.recv()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if m.Type != msgConfig || m.Config == nil {
		return fmt.Errorf("first message is %s, not config", m.Type)
	}
	cfg := m.Config
	times.Config = time.Now().UnixNano()
	if cfg.Exec {
		return execInit(conn, cfg)
	}
	spec := cfg.Spec
	newNS := map[specs.LinuxNamespaceType]bool{}
	// A mount namespace joined by path gets the rootfs set up in it all the
	// same, as runc does: the container still needs its own root.
	ownRoot := false
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path == "" {
			newNS[ns.Type] = true
		}
		if ns.Type == specs.MountNamespace {
			ownRoot = true
		}
	}
	if newNS[specs.UTSNamespace] {
		if spec.Hostname != "" {
			if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
				return fmt.Errorf("set hostname: %w", err)
			}
		}
		if spec.Domainname != "" {
			if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
				return fmt.Errorf("set domainname: %w", err)
			}
		}
	}
	if ownRoot {
		if err := setupRootfs(cfg, newNS, conn); err != nil {
			return err
		}
	} else if err := enterRootNoMountNS(cfg.Rootfs, spec, conn); err != nil {
		return err
	}
	for k, v := range spec.Linux.Sysctl {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if strings.Contains(k, "..") || strings.Contains(k, "/") {
			return invalidf("linux.sysctl %q: bad key", k)
		}
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return invalidf("linux.sysctl %s: %v", k, err)
		}
	}
	if ownRoot {
		if err := finishRootfs(spec); err != nil {
			return err
		}
	}
	times.Rootfs = time.Now().UnixNano()
	p := cfg.Process
	if err := setPersonality(spec.Linux.Personality); err != nil {
		return err
	}
	if err := prepareProcess(conn, p); err != nil {
		return err
	}
	path, env, err := lookExec(p)
	if err != nil {
		return err
	}
	if err := conn.send(&syncMsg{Type: msgReady, Times: &times}); err != nil {
		return err
	}
	unix.Close(initSyncFd)
	if err := waitStart(); err != nil {
		return err
	}
	if spec.Hooks != nil && len(spec.Hooks.StartContainer) > 0 {
		// startContainer hooks run in the container, after start, before the
		// user's process: still "created" (runc).
		st := &specs.State{Version: specs.Version, ID: cfg.ID, Status: specs.StateCreated, Pid: os.Getpid()}
		if err := runHooks(context.Background(), "startContainer", spec.Hooks.StartContainer, st); err != nil {
			return err
		}
	}
	return finalize(p, cfg, path, env)
}

// enterRootNoMountNS is the root of a container that shares the runtime's
// mount namespace (no "mount" in linux.namespaces): a chroot into
// root.path, as runc does. Nothing is mounted: in the host's namespace a
// mount would outlive the container (the parent has logged which mounts,
// masked and read-only paths this skips).
func enterRootNoMountNS(rootfs string, spec *specs.Spec, conn syncConn) error {
	if err := conn.hooks(spec); err != nil {
		return err
	}
	if err := unix.Chroot(rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir to the new root: %w", err)
	}
	return nil
}

// hooks asks the parent to run the prestart and createRuntime hooks, waits,
// then runs the createContainer hooks.
func (c syncConn) hooks(spec *specs.Spec) error {
	if spec.Hooks == nil || len(spec.Hooks.Prestart)+len(spec.Hooks.CreateRuntime)+len(spec.Hooks.CreateContainer) == 0 {
		return nil
	}
	if err := c.send(&syncMsg{Type: msgHooks}); err != nil {
		return err
	}
	m, err := c.recv()
	if err != nil {
		return fmt.Errorf("wait for hooks: %w", err)
	}
	if m.Type != msgHooksDone {
		return fmt.Errorf("wait for hooks: got %s", m.Type)
	}
	// In the container's namespaces, its mounts made, before pivot_root.
	return runHooks(context.Background(), "createContainer", spec.Hooks.CreateContainer, m.State)
}

// waitStart is the create/start barrier: opening the fifo for writing blocks
// until Start opens it for reading. The write end stays open, close-on-exec,
// so Start sees EOF once the user's process is exec'd (or the init died):
// poststart hooks run after the process is executed, as runc's do.
func waitStart() error {
	fd, err := unix.Openat(initStateFd, fifoName, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	if _, err := unix.Write(fd, []byte{'0'}); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	unix.Close(initStateFd)
	return nil
}

// prepareProcess does, before the barrier, what can fail on the spec: the
// console, rlimits, umask, cwd. Failures reach Create's caller.
func prepareProcess(conn syncConn, p *specs.Process) error {
	if p.Terminal {
		if err := setupConsole(conn, p.ConsoleSize); err != nil {
			return err
		}
	}
	for _, rl := range p.Rlimits {
		lim := &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		// syscall.Setrlimit, not unix: it also stops Go from restoring its
		// own RLIMIT_NOFILE at exec.
		if err := syscall.Setrlimit(rlimitByName[rl.Type], lim); err != nil {
			var cur syscall.Rlimit
			_ = syscall.Getrlimit(rlimitByName[rl.Type], &cur)
			if errors.Is(err, unix.EPERM) {
				return &classErr{class: "privilege", field: "process.rlimits[" + rl.Type + "]",
					req: int64(rl.Hard), allowed: int64(cur.Max), err: err}
			}
			return invalidf("process.rlimits %s: %v", rl.Type, err)
		}
	}
	if err := setIOPriority(p.IOPriority); err != nil {
		return err
	}
	if err := setScheduler(p.Scheduler); err != nil {
		return err
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	} else {
		unix.Umask(0o022)
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	// After pivot_root (or setns into the mount namespace) "/" is the
	// container's root. The cwd is resolved inside it with magic links
	// refused: a plain chdir would follow /proc/self/fd/N to an fd we still
	// hold (the state dir), a host directory (CVE-2024-21626).
	return chdirInRoot(cwd)
}

func chdirInRoot(cwd string) error {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root: %w", err)
	}
	defer unix.Close(root)
	fd, err := openInRoot(root, cwd, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return invalidf("process.cwd %s: %v", cwd, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return invalidf("process.cwd %s: %v", cwd, err)
	}
	return nil
}

func lookExec(p *specs.Process) (string, []string, error) {
	env := p.Env
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	name := p.Args[0]
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", nil, invalidf("process.args[0] %s: %v", name, err)
		}
		return name, env, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		c := filepath.Join(d, name)
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c, env, nil
		}
	}
	return "", nil, invalidf("process.args[0] %s: %v", name, exec.ErrNotFound)
}

// finalize drops to the user's credentials, capabilities and seccomp, then
// execs. Order matters: bounding set while we hold CAP_SETPCAP, keep caps
// across setuid, seccomp last (it may forbid what came before).
func finalize(p *specs.Process, cfg *initConfig, path string, env []string) error {
	if err := newSessionKeyring(); err != nil {
		return err
	}
	last := lastCap()
	// Before seccomp (a profile may forbid the write) and while still root;
	// it takes effect at the exec below.
	if err := applyAppArmor(p.ApparmorProfile); err != nil {
		return err
	}
	if !p.NoNewPrivileges {
		// Without no_new_privs, installing a filter needs CAP_SYS_ADMIN,
		// which the user's capabilities usually lack: install it now, as
		// runc does. The profile must then allow the few syscalls below.
		if err := seccomp.Install(cfg.Seccomp, cfg.SeccompFlags); err != nil {
			return err
		}
	}
	if err := dropBounding(p.Capabilities, last); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set keepcaps: %w", err)
	}
	gids := make([]int, len(p.User.AdditionalGids))
	for i, g := range p.User.AdditionalGids {
		gids[i] = int(g)
	}
	// This thread's credentials only, as runc does: it is the one that
	// execs, and execve ends the others. Go's syscall.Setres[ug]id would
	// signal every thread of the runtime to change theirs too.
	if err := unix.Setgroups(gids); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := threadSetres(unix.SYS_SETRESGID, p.User.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", p.User.GID, err)
	}
	if err := threadSetres(unix.SYS_SETRESUID, p.User.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", p.User.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	if err := applyCaps(p.Capabilities, last); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if p.NoNewPrivileges {
		if err := seccomp.Install(cfg.Seccomp, cfg.SeccompFlags); err != nil {
			return err
		}
	}
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME=/")
	}
	return fmt.Errorf("exec %s: %w", path, syscall.Exec(path, p.Args, env))
}

// newSessionKeyring gives the process an anonymous session keyring of its
// own, as runc does: without one it would possess the runtime's session
// keyring or, lacking that, the host root's user-session keyring, and
// could read the keys there. A kernel without keyrings has nothing to leak.
func newSessionKeyring() error {
	if _, _, errno := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); errno != 0 && errno != unix.ENOSYS {
		return fmt.Errorf("join a new session keyring: %w", errno)
	}
	return nil
}

func hasEnv(env []string, k string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, k+"=") {
			return true
		}
	}
	return false
}

// setupConsole opens a pty in the container's devpts, hands the master to the
// parent and makes the slave our stdio and controlling terminal.
func setupConsole(conn syncConn, size *specs.Box) error {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock pty: %w", err)
	}
	r1, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY)
	if errno != 0 {
		return fmt.Errorf("open pty peer: %w", errno)
	}
	slave := int(r1)
	if size != nil {
		_ = unix.IoctlSetWinsize(slave, unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)})
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(slave, i, 0); err != nil {
			return fmt.Errorf("dup pty to stdio: %w", err)
		}
	}
	unix.Close(slave)
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	if err := conn.send(&syncMsg{Type: msgConsole}); err != nil {
		return err
	}
	return conn.sendFd(master)
}

// threadSetres sets the real, effective and saved uid (SYS_SETRESUID) or gid
// (SYS_SETRESGID) of the calling thread alone.
func threadSetres(trap uintptr, id uint32) error {
	if _, _, errno := unix.RawSyscall(trap, uintptr(id), uintptr(id), uintptr(id)); errno != 0 {
		return errno
	}
	return nil
}
