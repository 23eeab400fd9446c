/* Startup of the C monitor: the bundle, the stdio, the create (by the Go
 * helper `<shim> monitor-create <bundle>`, since the executor is Go), the
 * control socket and the ready line; and the small helpers both halves use. */
#include "cmon.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct cmon M;
/* The big buffers, apart from M's small fields: pages of them count only
 * once output flows. */
static char streambuf[2][CMON_LINE], logbuf[CMON_LOGBUF];

#define bundle_arg M.bundle_arg

void now_rfc3339(char *dst, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int k = snprintf(dst, n, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (ts.tv_nsec) { /* RFC3339Nano: trailing zeros of the fraction dropped */
		char frac[16];
		snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec);
		size_t l = strlen(frac);
		while (frac[l - 1] == '0')
			frac[--l] = 0;
		k += snprintf(dst + k, n - k, "%s", frac);
	}
	snprintf(dst + k, n - k, "Z");
}

/* jsonesc writes s as a JSON string body (no quotes), cut to fit. */
void jsonesc(char *dst, size_t n, const char *s)
{
	size_t o = 0;
	for (; *s && o + 7 < n; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(dst + o, n - o, "\\u%04x", c);
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o] = 0;
}

/* mlog writes one slog-style text line to monitor.log. */
void mlog(const char *level, const char *fmt, ...)
{
	if (M.mlog < 0)
		return;
	char ts[48], msg[1024], line[1400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	now_rfc3339(ts, sizeof ts);
	int k = snprintf(line, sizeof line, "time=%s level=%s %s container=%s monitor=c\n", ts, level, msg, M.id);
	if (k > (int)sizeof line - 1)
		k = sizeof line - 1;
	if (write(M.mlog, line, (size_t)k) < 0) {
		/* nowhere left to say it */
	}
}

static void ready(int pid, const char *err)
{
	char buf[1200], esc[1024];
	int k;
	if (err) {
		jsonesc(esc, sizeof esc, err);
		k = snprintf(buf, sizeof buf, "{\"error\":\"%s\"}\n", esc);
	} else {
		k = snprintf(buf, sizeof buf, "{\"pid\":%d}\n", pid);
	}
	if (write(3, buf, (size_t)k) < 0) {
		/* the daemon is gone: it kills the session on a missing report */
	}
	close(3);
}

static __attribute__((noreturn)) void fail(const char *what)
{
	char msg[600];
	snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
	mlog("ERROR", "msg=\"monitor failed\" error=\"%s\"", msg);
	ready(0, msg);
	_exit(1);
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	if (M.arena_n + n <= sizeof M.arena) {
		char *d = memcpy(M.arena + M.arena_n, s, n);
		M.arena_n += n;
		return d;
	}
	char *d = strdup(s);
	if (!d)
		fail("copy config");
	return d;
}

static int readfile(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, n - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == n - 1)
			break;
	}
	close(fd);
	buf[got] = 0;
	return (int)got;
}

/* read_oom returns the oom_kill counter of a keyed file (v1
 * memory.oom_control, v2 memory.events) or of a file holding just the
 * number; 0 when it is unreadable (the cgroup is gone). */
uint64_t read_oom(const char *path)
{
	char buf[4096];
	if (!path[0] || readfile(path, buf, sizeof buf) < 0)
		return 0;
	char *p = buf;
	for (;;) {
		char *line = p;
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		if (strncmp(line, "oom_kill ", 9) == 0)
			return strtoull(line + 9, NULL, 10);
		if (line == buf && line[0] >= '0' && line[0] <= '9')
			return strtoull(line, NULL, 10);
		if (!nl)
			return 0;
		p = nl + 1;
	}
}

/* monitor.cfg: "key value" lines written by monitor.Spawn. */
/* Start-up scratch, mapped for it and unmapped after: no page of the
 * binary's bss stays touched for it. */
#define CMON_SCRATCH 16384
static char *cfgbuf, *rep;

static int read_config(void)
{
	char *buf = cfgbuf;
	if (readfile("monitor.cfg", buf, CMON_SCRATCH) < 0)
		return -1;
	for (char *p = buf; *p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		char *v = strchr(p, ' ');
		if (v) {
			*v++ = 0;
			if (!strcmp(p, "id"))
				M.id = xstrdup(v);
			else if (!strcmp(p, "log"))
				M.log_path = xstrdup(v);
			else if (!strcmp(p, "stdin"))
				M.stdin_cfg = *v == '1';
			else if (!strcmp(p, "stdin_once"))
				M.stdin_once = *v == '1';
			else if (!strcmp(p, "terminal"))
				M.terminal = *v == '1';
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

/* child_exec runs in a forked child: it moves fds[i] (or nothing when
 * -1) to fd 3+i, restores what the monitor changed (signal mask, SIGPIPE)
 * and execs argv. Every other fd of the monitor is close-on-exec. */
static __attribute__((noreturn)) void child_exec(char *const argv[], int *fds, int nfds, int out)
{
	int hi[8];
	for (int i = 0; i < nfds; i++)
		hi[i] = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
	if (out >= 0)
		dup2(out, 1);
	for (int i = 0; i < nfds; i++) {
		if (hi[i] >= 0)
			dup2(hi[i], 3 + i);
		else
			close(3 + i);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	execv("/proc/self/exe", argv);
	_exit(127);
}

/* run_helper runs `<shim> monitor-op ...` to completion (blocking: start
 * with hooks and kill of every process are rare and short) and returns its
 * exit code, with its output (the error) in out. */
int run_helper(char *const argv[], char *out, size_t outn)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(out, outn, "create pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(out, outn, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0)
		child_exec(argv, NULL, 0, p[1]);
	close(p[1]);
	size_t got = 0;
	for (;;) {
		ssize_t r = read(p[0], out + got, outn - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == outn - 1)
			break;
	}
	out[got] = 0;
	while (got > 0 && out[got - 1] == '\n')
		out[--got] = 0;
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* write_exit_record is monitor.WriteExit: temp file, fsync, rename. */
int write_exit_record(const struct exitrec *e)
{
	char tmp[] = ".exit-XXXXXX", buf[1024], msg[600];
	int k = snprintf(buf, sizeof buf, "{\"code\":%d", e->code);
	if (e->signal)
		k += snprintf(buf + k, sizeof buf - k, ",\"signal\":%d", e->signal);
	k += snprintf(buf + k, sizeof buf - k, ",\"exited_at\":\"%s\"", e->exited_at);
	if (e->oom_killed)
		k += snprintf(buf + k, sizeof buf - k, ",\"oom_killed\":true");
	if (e->message[0]) {
		jsonesc(msg, sizeof msg, e->message);
		k += snprintf(buf + k, sizeof buf - k, ",\"message\":\"%s\"", msg);
	}
	k += snprintf(buf + k, sizeof buf - k, "}");
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ok = write(fd, buf, (size_t)k) == k && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, "exit.json") < 0) {
		unlink(tmp);
		return -1;
	}
	int d = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d >= 0) {
		fsync(d);
		close(d);
	}
	return 0;
}

static int nonblock(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* kill_adopted kills and reaps what a failed create left to us, the
 * subreaper: a helper that died mid-create orphans the init it made. */
static void kill_adopted(void)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
	int n = readfile(path, buf, sizeof buf);
	for (char *p = buf; n > 0 && *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0)
			kill((pid_t)pid, SIGKILL);
		p = end;
	}
	/* until ECHILD: the SIGKILLed die at once */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
	}
}

/* create runs the Go create helper with the container's ends of the stdio
 * (fd 4 stdin, 5 stdout, 6 stderr, as its last argument says) and a socket (fd 3) on which it answers
 * "ok\n<pid>\n<oom0>\n<fifo>\n<oom path>\n" (with the pty master attached)
 * or "err\n<message>". */
static void create(void)
{
	int in[2] = {-1, -1}, outp[2][2] = {{-1, -1}, {-1, -1}}, sp[2];
	if (M.stdin_cfg && pipe2(in, O_CLOEXEC) < 0)
		fail("create stdin pipe");
	if (!M.terminal)
		for (int i = 0; i < 2; i++)
			if (pipe2(outp[i], O_CLOEXEC) < 0)
				fail("create output pipe");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		fail("create helper socket");
	pid_t pid = fork();
	if (pid < 0)
		fail("fork create helper");
	if (pid == 0) {
		int fds[4] = {sp[1], in[0], outp[0][1], outp[1][1]};
		/* which of fds 4-6 the helper gets (it cannot tell a closed fd from
		 * one its own runtime opened) */
		char have[4] = {in[0] >= 0 ? '1' : '0', outp[0][1] >= 0 ? '1' : '0', outp[1][1] >= 0 ? '1' : '0', 0};
		char *argv[] = {"cri-server-shim", "monitor-create", (char *)bundle_arg, have, NULL};
		child_exec(argv, fds, 4, -1);
	}
	close(sp[1]);
	if (in[0] >= 0)
		close(in[0]);
	for (int i = 0; i < 2; i++)
		if (outp[i][1] >= 0)
			close(outp[i][1]);
	size_t got = 0;
	int console = -1;
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = {rep + got, CMON_SCRATCH - 1 - got};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
		ssize_t r = recvmsg(sp[0], &mh, MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && console < 0)
				memcpy(&console, CMSG_DATA(c), sizeof console);
		got += (size_t)r;
		if (got == CMON_SCRATCH - 1)
			break;
	}
	rep[got] = 0;
	close(sp[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	char *f[5] = {0};
	char *p = rep;
	for (int i = 0; i < 5 && p; i++) {
		f[i] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = 0;
	}
	if (!f[0] || strcmp(f[0], "ok") != 0 || !f[4]) {
		char msg[600];
		if (f[0] && !strcmp(f[0], "err") && f[1])
			snprintf(msg, sizeof msg, "%s", f[1]);
		else
			snprintf(msg, sizeof msg, "create helper failed (status %d)", st);
		mlog("ERROR", "msg=\"create container\" error=\"%s\"", msg);
		kill_adopted();
		ready(0, msg);
		_exit(1);
	}
	M.init = (pid_t)atoi(f[1]);
	M.oom0 = strtoull(f[2], NULL, 10);
	M.fifo = xstrdup(strcmp(f[3], "-") ? f[3] : "");
	M.oom_path = xstrdup(strcmp(f[4], "-") ? f[4] : "");
	M.stdin_fd = in[1];
	if (M.terminal && console >= 0) {
		M.console = console;
		M.stdin_fd = console;
		M.out[0].fd = console;
	} else {
		if (console >= 0)
			close(console);
		M.out[0].fd = outp[0][0];
		M.out[1].fd = outp[1][0];
	}
	for (int i = 0; i < 2; i++)
		if (M.out[i].fd >= 0)
			nonblock(M.out[i].fd);
}

/* shed drops this process's mappings of read-only file pages that it
 * holds no private copy of: the loader's and libc's start-up, and the
 * kernel's fault-around (64 kB per fault), left ~1.5 MB of libc, ld.so and
 * binary pages resident, counted in its RSS though shared. They are
 * file-backed and unmodified, so MADV_DONTNEED loses nothing: the loop
 * faults back the few it runs. A mapping with an anonymous (copied)
 * page, such as RELRO, is kept whole. */
#define shed_ranges M.shed_ranges
#define nshed M.nshed
#define stack_lo M.stack_lo

/* drop gives back the whole pages inside [p, p+n), scratch whose contents
 * no longer matter (they read as zeros when touched again). */
void drop(void *p, size_t n)
{
	unsigned long lo = ((unsigned long)p + 4095) & ~4095UL, hi = ((unsigned long)p + n) & ~4095UL;
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* reshed drops them again, after the loop ran a control request (whose
 * printf and friends fault in tens of kB of libc): an idle monitor stays
 * at the pages of epoll_wait. A dozen madvise calls: cheap. With them goes
 * the stack below this frame (and a margin for madvise's own): nothing
 * lives there in a single thread without signal handlers, but start-up
 * and printf left it touched. */
void reshed(void)
{
	for (int i = 0; i < nshed; i++)
		madvise((void *)shed_ranges[i].lo, shed_ranges[i].hi - shed_ranges[i].lo, MADV_DONTNEED);
	volatile char here = 0;
	unsigned long end = ((unsigned long)&here - 8192) & ~4095UL;
	if (stack_lo && end > stack_lo)
		madvise((void *)stack_lo, end - stack_lo, MADV_DONTNEED);
}

static void shed(void)
{
	size_t cap = 1 << 20;
	char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return;
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	if (fd >= 0) {
		ssize_t r;
		while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
			n += (size_t)r;
		close(fd);
	}
	buf[n] = 0;
	if (fd < 0 || n == cap - 1) { /* unreadable, or cut: keep everything */
		munmap(buf, cap);
		return;
	}
	unsigned long lo = 0, hi = 0;
	int cand = 0;
	for (char *p = buf; *p;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		unsigned long a, b;
		char perms[8], path[512] = "";
		if (sscanf(p, "%lx-%lx %7s %*s %*s %*s %511s", &a, &b, perms, path) >= 3 && strchr(p, '-') < strchr(p, ' ')) {
			lo = a, hi = b;
			cand = perms[1] == '-' && perms[3] == 'p' && path[0] == '/';
			if (!strcmp(path, "[stack]"))
				stack_lo = a;
		} else if (cand && strncmp(p, "Anonymous:", 10) == 0) {
			if (strtoul(p + 10, NULL, 10) == 0 && nshed < (int)(sizeof shed_ranges / sizeof shed_ranges[0])) {
				shed_ranges[nshed].lo = lo;
				shed_ranges[nshed++].hi = hi;
			}
			cand = 0;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	munmap(buf, cap);
	reshed();
}

static int listen_socket(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, "monitor.sock"); /* relative: the bundle is our cwd */
	unlink(sa.sun_path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -1;
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 64) < 0) {
		int e = errno;
		close(s);
		errno = e;
		return -1;
	}
	chmod(sa.sun_path, 0600);
	return s;
}

/* criserver_cmon is the monitor's main, entered from the shim's
 * constructor before the Go runtime: it never returns. */
void criserver_cmon(int argc, char **argv)
{
	M.mlog = M.logfd = M.lsock = M.stdin_fd = M.console = -1;
	M.id = M.log_path = M.oom_path = M.fifo = "";
	M.out[0].buf = streambuf[0];
	M.out[1].buf = streambuf[1];
	M.wbuf = logbuf;
	M.out[0].fd = M.out[1].fd = -1;
	M.out[0].name = "stdout";
	M.out[1].name = "stderr";
	M.out[0].frame = FRAME_STDOUT;
	M.out[1].frame = FRAME_STDERR;
	/* Nothing of the daemon but the ready pipe may reach the container. */
	syscall(SYS_close_range, 4, ~0U, 0);
	fcntl(3, F_SETFD, FD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	if (argc != 3) {
		errno = EINVAL;
		fail("usage: cri-server-shim monitor <bundle>");
	}
	bundle_arg = argv[2];
	if (chdir(bundle_arg) < 0)
		fail("enter bundle");
	M.mlog = open("monitor.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cfgbuf = mmap(NULL, 2 * CMON_SCRATCH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (cfgbuf == MAP_FAILED)
		fail("map start-up buffers");
	rep = cfgbuf + CMON_SCRATCH;
	if (read_config() < 0)
		fail("read monitor.cfg");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		fail("become subreaper");
	/* SIGCHLD through a signalfd, blocked before any child exists so that
	 * no exit is missed. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	M.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (M.sigfd < 0)
		fail("create signalfd");
	if (M.log_path[0]) {
		M.logfd = open(M.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (M.logfd < 0)
			fail("open container log");
	}
	create();
	M.lsock = listen_socket();
	if (M.lsock < 0) {
		int e = errno;
		kill(M.init, SIGKILL);
		errno = e;
		fail("serve control socket");
	}
	mlog("INFO", "msg=\"container created\" pid=%d", M.init);
	ready(M.init, NULL);
	munmap(cfgbuf, 2 * CMON_SCRATCH);
	shed();
	cmon_loop();
}
