package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	// The pod init proper, in C before the Go runtime starts; PodInitMain
	// is its fallback in a build without cgo.
	_ "github.com/cri-server/cri-server/sandbox/podinit"
)

// nsRequest says which namespaces a pod gets of its own.
type nsRequest struct {
	dir      string
	net      bool
	ipc      bool
	uts      bool
	pid      bool // start a reaping init in a new PID namespace
	hostname string
	sysctls  []sysctl
}

type nsResult struct {
	net, ipc, uts, pid string
	initPID            int
}

// createNamespaces makes the pod's namespaces on a thread of their own and
// pins each with a bind mount of the thread's ns file, so they outlive the
// thread: no pause process. The thread then goes back into the daemon's
// namespaces (leaveLocked) and to the Go scheduler; one that cannot stays
// locked, so that Go ends it with its goroutine instead of reusing a
// thread in foreign namespaces. On error everything pinned is undone
// before returning.
//
// A goroutine that ends locked to the main thread parks it for good (Go
// cannot end that thread), here in the pod's namespaces (its netns, and the
// pod's veth with it, outlived the pod). init keeps the main goroutine on
// the main thread so that no other goroutine ever runs there.
func createNamespaces(req nsRequest) (nsResult, error) {
	type out struct {
		res nsResult
		err error
	}
	ch := make(chan out, 1)
	go func() {
		goruntime.LockOSThread()
		res, err := createNamespacesLocked(req)
		if err != nil {
			unpinAll(res)
		}
		leaveLocked()
		ch <- out{res, err}
	}()
	o := <-ch
	return o.res, o.err
}

// daemonNS holds the daemon's own net, IPC and UTS namespaces, opened from
// the main thread (which never leaves them: init keeps the main goroutine
// there), for threads coming back from a pod's.
var daemonNS struct {
	once sync.Once
	fds  map[int]int // CLONE_NEW* -> fd
	err  error
}

// leaveLocked moves the calling thread, locked and in some pod's
// namespaces, back into the daemon's and unlocks it: a thread made and
// ended per pod cost every RunPodSandbox a clone and an exit. If any step
// fails the thread stays locked, and Go ends it with its goroutine.
func leaveLocked() {
	daemonNS.once.Do(func() {
		daemonNS.fds = map[int]int{}
		for kind, name := range map[int]string{unix.CLONE_NEWNET: "net", unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWUTS: "uts"} {
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/%s", os.Getpid(), name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				daemonNS.err = err
				return
			}
			daemonNS.fds[kind] = fd
		}
	})
	if daemonNS.err != nil {
		return
	}
	for kind, fd := range daemonNS.fds {
		if unix.Setns(fd, kind) != nil {
			return
		}
	}
	goruntime.UnlockOSThread()
}

// Preconditions: the calling goroutine is locked to its thread, which
// leaveLocked takes back or ends afterwards.
func createNamespacesLocked(req nsRequest) (nsResult, error) {
	var res nsResult
	flags := 0
	if req.net {
		flags |= unix.CLONE_NEWNET
	}
	if req.ipc {
		flags |= unix.CLONE_NEWIPC
	}
	if req.uts {
		flags |= unix.CLONE_NEWUTS
	}
	if flags != 0 {
		if err := unix.Unshare(flags); err != nil {
			return res, fmt.Errorf("unshare namespaces: %w", err)
		}
	}
	if req.net {
		if err := loopbackUp(); err != nil {
			return res, err
		}
	}
	if err := configureLocked(req); err != nil {
		return res, err
	}
	self := fmt.Sprintf("/proc/%d/task/%d/ns/", os.Getpid(), unix.Gettid())
	var err error
	if req.net {
		if res.net, err = pin(self+"net", filepath.Join(req.dir, "netns")); err != nil {
			return res, err
		}
	}
	if req.ipc {
		if res.ipc, err = pin(self+"ipc", filepath.Join(req.dir, "ipcns")); err != nil {
			return res, err
		}
	}
	if req.uts {
		if res.uts, err = pin(self+"uts", filepath.Join(req.dir, "utsns")); err != nil {
			return res, err
		}
	}
	return res, startInitLocked(req, &res)
}

// configureLocked sets the hostname and the sysctls of the namespaces the
// calling thread is in (the pod's, by unshare or setns).
func configureLocked(req nsRequest) error {
	if req.uts && req.hostname != "" {
		if err := unix.Sethostname([]byte(req.hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	// /proc/sys resolves net and ipc entries against the opening thread's
	// namespaces, so these writes land in the pod's, not the node's.
	for _, s := range req.sysctls {
		if err := s.apply(); err != nil {
			return err
		}
	}
	return nil
}

// startInitLocked starts the reaping init of a shared PID namespace, when
// asked, from the calling thread and pins its namespace.
func startInitLocked(req nsRequest, res *nsResult) error {
	if !req.pid {
		return nil
	}
	// Forked from this thread, the init inherits the pod's net, ipc and
	// uts namespaces; only a process can hold a PID namespace open for new
	// members.
	pid, err := startInit(req.dir)
	if err != nil {
		return err
	}
	res.initPID = pid
	res.pid, err = pin(fmt.Sprintf("/proc/%d/ns/pid", pid), filepath.Join(req.dir, "pidns"))
	return err
}

// joinNamespaces configures namespaces made ahead (a pool set pinned in
// req.dir, see nsPool) for the pod: hostname, sysctls and, when asked, the
// init of a shared PID namespace, from a thread that enters them. What it
// started is undone on error; the pinned set itself is the caller's.
func joinNamespaces(req nsRequest) (nsResult, error) {
	res := nsResult{net: filepath.Join(req.dir, "netns"), ipc: filepath.Join(req.dir, "ipcns"), uts: filepath.Join(req.dir, "utsns")}
	if len(req.sysctls) == 0 && req.hostname == "" && !req.pid {
		return res, nil
	}
	type out struct {
		res nsResult
		err error
	}
	ch := make(chan out, 1)
	go func() {
		goruntime.LockOSThread()
		r := res
		err := setnsAll(map[string]int{r.net: unix.CLONE_NEWNET, r.ipc: unix.CLONE_NEWIPC, r.uts: unix.CLONE_NEWUTS})
		if err == nil {
			err = configureLocked(req)
		}
		if err == nil {
			err = startInitLocked(req, &r)
		}
		if err != nil && r.initPID > 0 {
			killInit(r.initPID)
			_ = unpin(r.pid)
			r.initPID, r.pid = 0, ""
		}
		leaveLocked()
		ch <- out{r, err}
	}()
	o := <-ch
	return o.res, o.err
}

// setnsAll moves the calling thread into each pinned namespace.
func setnsAll(paths map[string]int) error {
	for path, kind := range paths {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open pod namespace: %w", err)
		}
		err = unix.Setns(fd, kind)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("enter pod namespace %s: %w", filepath.Base(path), err)
		}
	}
	return nil
}

// pin bind-mounts the namespace file src onto a new file at dst.
func pin(src, dst string) (string, error) {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return "", fmt.Errorf("create pin file: %w", err)
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("pin namespace %s: %w", filepath.Base(dst), err)
	}
	return dst, nil
}

// unpin drops a pinned namespace; the kernel frees it with its last user.
// A path that is gone or not mounted is fine: unpin must be repeatable.
func unpin(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pin file: %w", err)
	}
	return nil
}

func unpinAll(r nsResult) {
	if r.initPID > 0 {
		killInit(r.initPID)
	}
	for _, p := range []string{r.pid, r.uts, r.ipc, r.net} {
		_ = unpin(p)
	}
}

// loopbackUp brings up lo, which every pod expects even when the conflist
// has no loopback plugin.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open socket for lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

// initArg is the argv[1] on which main dispatches to PodInitMain.
const initArg = "pod-init"

func startInit(dir string) (int, error) {
	// No other argument: the init's cmdline is what a container sharing
	// the namespace reads as /proc/1/cmdline.
	cmd := exec.Command("/proc/self/exe", initArg)
	cmd.Env = append(os.Environ(), podDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	pid := cmd.Process.Pid
	// Reap it when it dies; after a daemon restart the node's init does.
	go cmd.Wait()
	// Atomic: a daemon killed while writing it must not leave an empty file
	// that hides the init from the start-up sweep (findInit).
	if err := writeFileAtomic(filepath.Join(dir, "init.pid"), []byte(strconv.Itoa(pid))); err != nil {
		killInit(pid)
		return 0, fmt.Errorf("record pod init: %w", err)
	}
	return pid, nil
}

// podDirEnv names the pod dir in the init's environment, not in its argv
// (which containers read as /proc/1/cmdline; its environ they cannot read
// without CAP_SYS_PTRACE): a daemon killed between starting the init and
// writing init.pid finds the init by it on its next start.
const podDirEnv = "CRI_SERVER_POD_DIR"

// findInit returns the pid of a live pod init started for dir, 0 if none.
// It reads every process's cmdline: for the start-up sweep of orphan pod
// dirs only, never on a CRI call.
func findInit(dir string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	mark := podDirEnv + "=" + dir
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !containsArg(b, initArg) {
			continue
		}
		if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && containsArg(env, mark) {
			return pid
		}
	}
	return 0
}

// killInit kills the pod's init if pid still names it (after a restart the
// pid may have been reused: its argv must still say pod-init).
func killInit(pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !containsArg(b, initArg) {
		return
	}
	_ = unix.Kill(pid, unix.SIGKILL)
}

func containsArg(cmdline []byte, arg string) bool {
	start := 0
	for i, c := range cmdline {
		if c == 0 {
			if string(cmdline[start:i]) == arg {
				return true
			}
			start = i + 1
		}
	}
	return false
}

// PodInitMain is the pod's init in a shared PID namespace: PID 1 reaps
// orphans (zombies would otherwise pile up) and exits on SIGTERM/SIGINT.
// main calls it when os.Args[1] == "pod-init"; it never returns. With cgo
// (every supported build) the C constructor in sandbox/podinit has taken
// over before main, and this is never reached.
func PodInitMain() {
	sigs := make(chan os.Signal, 4)
	signalNotify(sigs)
	for {
		select {
		case <-sigs:
			os.Exit(0)
		default:
		}
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.ECHILD) {
			// Nothing to reap: wait for a signal (SIGCHLD or the end).
			if s := <-sigs; s != syscall.SIGCHLD {
				os.Exit(0)
			}
		}
	}
}

// IsPodInit says whether args (os.Args) ask for the pod init.
func IsPodInit(args []string) bool { return len(args) > 1 && args[1] == initArg }

// isMountpoint says whether path is still a pinned namespace (an nsfs
// file), as after a daemon restart without a reboot.
func isMountpoint(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// A LockOSThread in an init function keeps main on the main thread for the
// program's life (see createNamespaces): any binary that runs pods links
// this package.
func init() { goruntime.LockOSThread() }
