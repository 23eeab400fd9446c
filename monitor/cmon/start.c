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
