/* The container init without exec and without the Go runtime: the runtime
 * forks (clone3) from a C function and the child sets the container up from
 * a plan the Go side laid out before the fork (fastinit.h), then waits for
 * start and execs the user's process. It does what init_linux.go and
 * rootfs.go do for the specs fastinit_linux.go accepts, in the same order.
 *
 * The parent is a multithreaded Go process: the child may call nothing that
 * takes a lock or allocates (no malloc, stdio, strerror, locale; no libc
 * set*id wrappers, which signal the parent's threads). Only system calls on
 * the plan's buffers and on the stack. Plain POSIX/Linux headers, constants
 * defined here when a libc (musl) lacks them. */
#include "fastinit_sys.h"

#if !FI_VM
struct fi_ctx fi_fork_ctx = {.sync_fd = -1};
#endif

/* ---- the process ---- */

/* setup_console is init_linux.go's setupConsole: a pty of the container's
 * devpts becomes our stdio and controlling terminal, and its master goes
 * to the parent after a {"type":"console"} frame. */
static void setup_console(const struct fi_plan *p)
{
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail("open /dev/ptmx", NULL, errno);
	int unlock = 0;
	if (SC(SYS_ioctl, master, TIOCSPTLCK, &unlock) < 0)
		fail("unlock pty", NULL, errno);
	long slave = SC(SYS_ioctl, master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (slave < 0)
		fail("open pty peer", NULL, errno);
	if (p->console_rows || p->console_cols) {
		struct winsize ws = {.ws_row = p->console_rows, .ws_col = p->console_cols};
		SC(SYS_ioctl, slave, TIOCSWINSZ, &ws);
	}
	for (int i = 0; i < 3; i++)
		if (dup2(slave, i) < 0)
			fail("dup pty to stdio", NULL, errno);
	close(slave);
	if (SC(SYS_ioctl, 0, TIOCSCTTY, 0) < 0)
		fail("set controlling terminal", NULL, errno);
	static const char body[] = "{\"type\":\"console\"}";
	if (fi_send_frame(body, sizeof body - 1) < 0)
		fail("send console", NULL, errno);
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	char byte = 'F';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &master, sizeof(int));
	if (SC(SYS_sendmsg, fi_ctx()->sync_fd, &msg, 0) < 0)
		fail("send pty master", NULL, errno);
	close(master);
}

static void prepare_process(const struct fi_plan *p)
{
	if (p->terminal)
		setup_console(p);
	for (int i = 0; i < p->nrlimits; i++) {
		const struct fi_rlimit *rl = &p->rlimits[i];
		struct rlimit64_ {
			uint64_t cur, max;
		} lim = {rl->cur, rl->max}, old = {0, 0};
		if (syscall(SYS_prlimit64, 0, rl->resource, &lim, NULL) == 0)
			continue;
		int e = errno;
		if (e == EPERM) {
			char field[64] = "process.rlimits[";
			strncat(field, rl->name, 40);
			strcat(field, "]");
			syscall(SYS_prlimit64, 0, rl->resource, NULL, &old);
			struct fi_err fe = {.class = "privilege", .field = field, .req = (long long)rl->max, .allowed = (long long)old.max};
			fail_full(&fe, "setrlimit", NULL, NULL, e);
		}
		failinv("process.rlimits ", rl->name, NULL, e);
	}
	umask(p->umask);
	/* The cwd resolved inside the root with magic links refused: a plain
	 * chdir would follow /proc/self/fd/N to an fd we hold (CVE-2024-21626). */
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		fail("open root", NULL, errno);
	int fd = fi_open_in_root(root, p->cwd, O_PATH | O_DIRECTORY);
	if (fd < 0)
		failinv("process.cwd ", p->cwd, NULL, errno);
	if (fchdir(fd) < 0)
		failinv("process.cwd ", p->cwd, NULL, errno);
	close(fd);
	close(root);
}

/* look_exec is init_linux.go's lookExec over the candidates Go listed. */
static const char *look_exec(const struct fi_plan *p)
{
	struct stat st;
	if (p->arg0_has_slash) {
		if (stat(p->cands[0], &st) < 0)
			failinv("process.args[0] ", p->arg0, NULL, errno);
		return p->cands[0];
	}
	for (int i = 0; i < p->ncands; i++)
		if (stat(p->cands[i], &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
			return p->cands[i];
	failinv("process.args[0] ", p->arg0, ": executable file not found in $PATH", 0);
}

static void finalize(const struct fi_plan *p, const char *path)
{
	if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, 0, 0, 0, 0) < 0 && errno != ENOSYS)
		fail("join a new session keyring", NULL, errno);
	struct fi_sock_fprog prog = {.len = (unsigned short)p->bpf_len, .filter = p->bpf};
	if (p->bpf && !p->no_new_privs && syscall(SYS_seccomp, 1, p->bpf_flags, &prog) < 0)
		fail("install seccomp", NULL, errno);
	for (int i = 0; i <= p->last_cap; i++)
		if (!(p->cap_bounding & (1ULL << i)) && prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0)
			fail("drop bounding capability", NULL, errno);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("set keepcaps", NULL, errno);
	/* Raw calls: the libc wrappers would signal the parent's threads. */
	if (syscall(SYS_setgroups, p->ngroups, p->groups) < 0)
		fail("setgroups", NULL, errno);
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		fail("setgid", NULL, errno);
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		fail("setuid", NULL, errno);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail("clear keepcaps", NULL, errno);
	struct fi_cap_header h = {.version = 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */};
	struct fi_cap_data d[2] = {
		{(uint32_t)p->cap_eff, (uint32_t)p->cap_perm, (uint32_t)p->cap_inh},
		{(uint32_t)(p->cap_eff >> 32), (uint32_t)(p->cap_perm >> 32), (uint32_t)(p->cap_inh >> 32)},
	};
	if (syscall(SYS_capset, &h, d) < 0)
		fail("set capabilities", NULL, errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail("clear ambient capabilities", NULL, errno);
	for (int i = 0; i <= p->last_cap; i++)
		if ((p->cap_amb & (1ULL << i)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			fail("raise ambient capability", NULL, errno);
	if (p->no_new_privs) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			fail("set no_new_privs", NULL, errno);
		if (p->bpf && syscall(SYS_seccomp, 1, p->bpf_flags, &prog) < 0)
			fail("install seccomp", NULL, errno);
	}
	execve(path, p->argv, p->envp);
	fail("exec ", path, errno);
}

/* ---- the child ---- */

static int cmp_int(int a, int b) { return a < b ? -1 : a > b; }

/* close_others closes every fd but 0-2 and keep[] (sorted here). */
static void close_others(int *keep, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && cmp_int(keep[j - 1], keep[j]) > 0; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned lo = 3;
	for (int i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned)keep[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
		lo = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0U, 0);
}

static void __attribute__((noreturn)) child(struct fi_plan *p)
{
	int64_t t_main = fi_now_ns();
	fi_ctx()->sync_fd = p->sync_fd;
	/* The parent's Go signal handlers must never run here: defaults
	 * first, then the signals the parent blocked around the clone. */
	struct {
		unsigned long handler, flags, restorer, mask;
	} dfl = {0, 0, 0, 0}; /* the kernel's sigaction: SIG_DFL */
	unsigned long none = 0;
	for (int s = 1; s < 65; s++)
		if (s != SIGKILL && s != SIGSTOP)
			SC(SYS_rt_sigaction, s, &dfl, 0, 8);
	SC(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, 8);
	/* Until the final execve nobody else may reach our memory, fds or
	 * /proc/<pid>/exe (the CVE-2019-5736 class). The flag is the address
	 * space's: with CLONE_VM the runtime's process becomes non-dumpable
	 * too, for the rest of its life, which costs it nothing (it is root,
	 * and it reads only its children's /proc). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("set non-dumpable", NULL, errno);
	/* Named apart from the runtime for ps and perf until the exec. */
	prctl(PR_SET_NAME, "cri-init", 0, 0, 0);
	/* cgroup v1: "0" into each tasks file moves this single thread alone,
	 * without the global lock (oci/cgroups.ForkJoin). */
	for (int i = 0; i < p->ntasks; i++) {
		ssize_t n;
		do
			n = write(p->tasks[i], "0", 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			fail("join cgroup", NULL, n < 0 ? errno : EIO);
	}
	if (p->new_cgroupns && unshare(CLONE_NEWCGROUP) < 0)
		fail("unshare cgroup namespace", NULL, errno);
	if (setsid() < 0)
		fail("setsid", NULL, errno);
	/* Nothing of the parent's beyond what the plan names survives; the
	 * sync socket and the state dir are close-on-exec. */
	for (int i = 0; i < 3; i++)
		if (dup2(p->stdio[i], i) < 0)
			fail("dup stdio", NULL, errno);
	int keep[2] = {p->sync_fd, p->state_fd};
	close_others(keep, 2);
	if (p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
		fail("set hostname", NULL, errno);
	if (p->domainname && setdomainname(p->domainname, strlen(p->domainname)) < 0)
		fail("set domainname", NULL, errno);
	fi_setup_rootfs(p);
	for (int i = 0; i < p->nsysctl; i++) {
		int fd = open(p->sysctl_paths[i], O_WRONLY | O_CLOEXEC);
		size_t n = strlen(p->sysctl_vals[i]);
		if (fd < 0 || write(fd, p->sysctl_vals[i], n) != (ssize_t)n)
			failinv("linux.sysctl ", p->sysctl_keys[i], NULL, errno);
		close(fd);
	}
	fi_finish_rootfs(p);
	int64_t t_rootfs = fi_now_ns();
	prepare_process(p);
	const char *path = look_exec(p);
	struct fi_buf f = {.n = 0};
	fb_raw(&f, "{\"type\":\"ready\",\"times\":{\"main\":");
	fb_int(&f, t_main);
	fb_raw(&f, ",\"config\":");
	fb_int(&f, t_main);
	fb_raw(&f, ",\"rootfs\":");
	fb_int(&f, t_rootfs);
	fb_raw(&f, "}}");
	if (fi_send_frame(f.b, f.n) < 0)
		fail("send ready", NULL, errno);
	close(fi_ctx()->sync_fd);
	fi_ctx()->sync_fd = -1;
	/* The create/start barrier (init_linux.go's waitStart): the write end
	 * stays open, close-on-exec, so start sees EOF once we exec. */
	int fifo;
	do
		fifo = openat(p->state_fd, "exec.fifo", O_WRONLY | O_CLOEXEC);
	while (fifo < 0 && errno == EINTR);
	if (fifo < 0)
		fail("open exec fifo", NULL, errno);
	if (write(fifo, "0", 1) != 1)
		fail("write exec fifo", NULL, errno);
	close(p->state_fd);
	finalize(p, path);
	_exit(127);
}

#if FI_VM
/* clone3_vm clones with the child on stack and running child(p): the
 * kernel starts it at the instruction after syscall with rsp at the
 * stack's top, where it can return to nothing. */
static long clone3_vm(struct fi_clone_args *a, struct fi_plan *p)
{
	long r;
	register void *fn __asm__("r12") = (void *)child;
	register void *arg __asm__("r13") = p;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r13, %%rdi\n\t"
			 "call *%%r12\n\t"
			 "hlt\n"
			 "1:"
			 : "=a"(r)
			 : "a"((long)SYS_clone3), "D"(a), "S"(sizeof *a), "r"(fn), "r"(arg)
			 : "rcx", "r11", "rdx", "memory");
	return r;
}
#endif

long criserver_fastinit_start(struct fi_plan *p)
{
	struct fi_clone_args a;
	memset(&a, 0, sizeof a);
	a.flags = p->clone_flags;
	a.exit_signal = SIGCHLD;
	if (p->cgroup_fd >= 0) {
		a.flags |= FI_CLONE_INTO_CGROUP;
		a.cgroup = (uint64_t)p->cgroup_fd;
	}
#if FI_VM
	/* The child's stack, aligned to its size (fi_ctx); freed by
	 * criserver_fastinit_release once the child is gone. */
	void *m = mmap(NULL, 2 * FI_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	p->stack_map = m;
	a.flags |= CLONE_VM;
	a.stack = ((uintptr_t)m + FI_STACK - 1) & ~(uintptr_t)(FI_STACK - 1);
	a.stack_size = FI_STACK;
	/* A thread pointer of the child's own, in its stack block above
	 * fi_ctx (zeroed by mmap; the stack grows down from the other end).
	 * Without it the child keeps the calling thread's, and libc's string
	 * functions read their stack-protector canary at %fs:0x28 there: the
	 * thread may have exited since (startIn's locked threads do) and its
	 * TLS been unmapped, and the child died of SIGSEGV in strcspn (about
	 * 1 create in 300 through the daemon). Its first word points to
	 * itself, as both musl's and glibc's thread pointer does. */
	uintptr_t tp = (uintptr_t)a.stack + FI_TLS_OFF;
	*(uintptr_t *)tp = tp;
	a.flags |= CLONE_SETTLS;
	a.tls = tp;
#endif
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
#if FI_VM
	long pid = clone3_vm(&a, p);
#else
	long pid = fi_sys7(SYS_clone3, (long)&a, sizeof a, 0, 0, 0, 0);
	if (pid == 0)
		child(p);
	if (pid < 0)
		pid = -fi_ctx()->err;
#endif
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid;
}

void criserver_fastinit_release(struct fi_plan *p)
{
	if (p->stack_map)
		munmap(p->stack_map, 2 * FI_STACK);
	p->stack_map = NULL;
}
