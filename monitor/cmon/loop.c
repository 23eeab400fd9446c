/* The C monitor's one event loop, single threaded: the container's output
 * to the CRI log (monitor/logger.go's format and rules) and to attached
 * clients, the control socket (control.c), the init's exit (SIGCHLD), the
 * drain and the exit record. */
#include "cmon.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>



long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ep_add(int fd, uint32_t ev, int kind, int idx)
{
	struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)kind << 32 | (uint32_t)idx};
	epoll_ctl(M.ep, EPOLL_CTL_ADD, fd, &e);
}

void ep_mod(int fd, uint32_t ev, int kind, int idx)
{
	struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)kind << 32 | (uint32_t)idx};
	epoll_ctl(M.ep, EPOLL_CTL_MOD, fd, &e);
}

/* ---- the CRI log ---- */

static void log_flush(void)
{
	size_t off = 0;
	while (off < M.wn && M.logfd >= 0) {
		ssize_t r = write(M.logfd, M.wbuf + off, M.wn - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			mlog("WARN", "msg=\"write container log\" error=\"%s\"", strerror(errno));
			break;
		}
		off += (size_t)r;
	}
	M.wn = 0;
}

static void log_record(const char *stream, int partial, const char *line, size_t n)
{
	if (M.logfd < 0)
		return;
	if (M.wn + n + 96 > CMON_LOGBUF)
		log_flush();
	char *b = M.wbuf + M.wn;
	now_rfc3339(b, 48);
	size_t k = strlen(b);
	k += (size_t)sprintf(b + k, " %s %c ", stream, partial ? 'P' : 'F');
	memcpy(b + k, line, n);
	k += n;
	b[k++] = '\n';
	M.wn += k;
}

int log_reopen(void)
{
	if (M.logfd < 0)
		return 0;
	log_flush();
	close(M.logfd);
	M.logfd = open(M.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	return M.logfd < 0 ? -1 : 0;
}

/* ---- the container's stdio ---- */

void stdin_write(const char *p, size_t n)
{
	int fd = M.stdin_fd;
	if (fd < 0 || M.stdin_closed)
		return;
	/* A container that does not read its stdin must not stop the loop
	 * for long: after a second the rest of the chunk is dropped. */
	long long until = now_ms() + 1000;
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r > 0) {
			p += r;
			n -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN && now_ms() < until) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			poll(&pf, 1, 50);
			continue;
		}
		mlog("WARN", "msg=\"write container stdin\" error=\"%s\"", r < 0 ? strerror(errno) : "short write");
		return;
	}
}

/* stdin_ended applies stdin_once (see attach.go's stdinEnded). */
void stdin_ended(void)
{
	if (!M.stdin_once || M.console >= 0)
		return;
	if (M.stdin_fd >= 0 && !M.stdin_closed) {
		M.stdin_closed = 1;
		close(M.stdin_fd);
		mlog("INFO", "msg=\"container stdin closed (stdin_once)\"");
	}
}

void resize(const unsigned char *p)
{
	struct winsize ws = {.ws_row = (unsigned short)(p[0] << 8 | p[1]), .ws_col = (unsigned short)(p[2] << 8 | p[3])};
	if (M.console < 0 || !ws.ws_row || !ws.ws_col)
		return;
	if (ioctl(M.console, TIOCSWINSZ, &ws) < 0)
		mlog("WARN", "msg=\"resize terminal\" error=\"%s\"", strerror(errno));
}

static void stream_eof(struct stream *s)
{
	if (s->n > 0)
		log_record(s->name, 0, s->buf, s->n);
	s->n = 0;
	if (s->fd != M.console)
		close(s->fd);
	s->fd = -1;
}

/* stream_read is LogWriter.Copy for one read: whole lines are F records
 * (a "\r\n" ends a line too), a full buffer without newline is a P record,
 * the last line without newline an F record at EOF. */
static void stream_read(struct stream *s)
{
	ssize_t r = read(s->fd, s->buf + s->n, CMON_LINE - s->n);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) { /* a pty master's EIO is its EOF */
		if (s->fd == M.console)
			epoll_ctl(M.ep, EPOLL_CTL_DEL, s->fd, NULL);
		stream_eof(s);
		return;
	}
	fanout(s->frame, s->buf + s->n, (size_t)r);
	s->n += (size_t)r;
	char *p = s->buf, *end = s->buf + s->n, *nl;
	while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
		size_t len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		log_record(s->name, 0, p, len);
		p = nl + 1;
	}
	size_t rest = (size_t)(end - p);
	if (rest == CMON_LINE) {
		log_record(s->name, 1, p, rest);
		rest = 0;
	}
	memmove(s->buf, p, rest);
	s->n = rest;
}

/* ---- the end ---- */

static void on_sigchld(void)
{
	struct signalfd_siginfo si;
	while (read(M.sigfd, &si, sizeof si) > 0) {
	}
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid != M.init || M.reaped)
			continue; /* an orphan of the container: only reaped */
		M.reaped = 1;
		M.wstatus = st;
		now_rfc3339(M.reaped_at, sizeof M.reaped_at);
		/* The OOM counter first: the drain may take seconds, and a remove
		 * meanwhile destroys the cgroup (containerd issue 8180). */
		M.oom_killed = read_oom(M.oom_path) > M.oom0;
		phase = P_DRAIN;
		deadline = now_ms() + 5000;
	}
}

static void record(void)
{
	log_flush();
	if (M.logfd >= 0)
		close(M.logfd);
	M.logfd = -1;
	if (M.stdin_fd >= 0 && !M.stdin_closed && M.stdin_fd != M.console) {
		M.stdin_closed = 1;
		close(M.stdin_fd);
	}
	struct exitrec *e = &M.exit;
	if (WIFSIGNALED(M.wstatus)) {
		e->signal = WTERMSIG(M.wstatus);
		e->code = 128 + e->signal;
	} else {
		e->code = WEXITSTATUS(M.wstatus);
	}
	e->oom_killed = M.oom_killed;
	snprintf(e->exited_at, sizeof e->exited_at, "%s", M.reaped_at);
	if (write_exit_record(e) < 0)
		mlog("ERROR", "msg=\"write exit record\" error=\"%s\"", strerror(errno));
	mlog("INFO", "msg=\"container exited\" code=%d oom_killed=%s", e->code, e->oom_killed ? "true" : "false");
	M.recorded = 1;
	for (int i = 0; i < CMON_CLIENTS; i++)
		if (M.cl[i].state == CL_WAIT) {
			M.cl[i].state = CL_CLOSING;
			reply(i, NULL);
		}
}

/* advance moves through the phases after the init's exit: drain the
 * output (5 s at most: a daemonized grandchild may hold the pipe), let
 * attached clients take their last output (1 s), record, linger 50 ms for
 * waiters to read, remove the socket, answer who already connected, go. */
static void advance(void)
{
	long long now = now_ms();
	if (phase == P_DRAIN && ((M.out[0].fd < 0 && M.out[1].fd < 0) || now >= deadline)) {
		if (M.out[0].fd >= 0 || M.out[1].fd >= 0)
			mlog("WARN", "msg=\"container output still open after init exit\"");
		for (int s = 0; s < 2; s++)
			if (M.out[s].fd >= 0) {
				epoll_ctl(M.ep, EPOLL_CTL_DEL, M.out[s].fd, NULL);
				stream_eof(&M.out[s]);
			}
		phase = P_CLOSING;
		deadline = now + 1000;
		for (int i = 0; i < CMON_CLIENTS; i++)
			if (M.cl[i].state == CL_ATTACH) {
				M.cl[i].state = CL_CLOSING;
				client_flush(i);
			}
	}
	if (phase == P_CLOSING) {
		int busy = 0;
		for (int i = 0; i < CMON_CLIENTS; i++)
			busy |= M.cl[i].state == CL_CLOSING && M.cl[i].outn > 0;
		if (busy && now < deadline)
			return;
		record();
		phase = P_LINGER;
		deadline = now + 50;
	}
	if (phase == P_LINGER && now >= deadline) {
		/* No new client from here on; one that connected before is in
		 * the backlog and gets its answer (not a reset) before we go. */
		unlink("monitor.sock");
		phase = P_FINAL;
		deadline = now + 1000;
	}
	if (phase == P_FINAL) {
		accept_clients();
		int busy = 0;
		for (int i = 0; i < CMON_CLIENTS; i++)
			busy |= M.cl[i].state == CL_REQ || (M.cl[i].state == CL_CLOSING && M.cl[i].outn > 0);
		if (!busy || now >= deadline)
			_exit(0);
	}
}

/* trim gives back, once the loop goes idle after control requests, what
 * they faulted in: file pages (reshed) and the scratch of the log writer,
 * the streams' line buffers past their data and the request buffers. */
static void trim(void)
{
	reshed();
	if (M.wn == 0)
		drop(M.wbuf, CMON_LOGBUF);
	for (int s = 0; s < 2; s++)
		drop(M.out[s].buf + M.out[s].n, CMON_LINE - M.out[s].n);
	for (int i = 0; i < CMON_CLIENTS; i++) {
		struct client *c = &M.cl[i];
		drop(c->req + (c->state == CL_REQ ? c->rn : 0), sizeof c->req - (c->state == CL_REQ ? c->rn : 0));
	}
}

void cmon_loop(void)
{
	M.ep = epoll_create1(EPOLL_CLOEXEC);
	if (M.stdin_fd >= 0)
		fcntl(M.stdin_fd, F_SETFL, fcntl(M.stdin_fd, F_GETFL) | O_NONBLOCK);
	for (int s = 0; s < 2; s++)
		if (M.out[s].fd >= 0)
			ep_add(M.out[s].fd, EPOLLIN, K_STREAM, s);
	ep_add(M.sigfd, EPOLLIN, K_SIG, 0);
	ep_add(M.lsock, EPOLLIN, K_LISTEN, 0);
	on_sigchld(); /* an init that died before the loop */
	for (;;) {
		int timeout = -1;
		if (phase != P_RUN) {
			long long d = deadline - now_ms();
			timeout = d < 0 ? 0 : (int)d;
		}
		struct epoll_event ev[32];
		int n = epoll_wait(M.ep, ev, 32, timeout);
		for (int k = 0; k < n; k++) {
			int kind = (int)(ev[k].data.u64 >> 32), idx = (int)(uint32_t)ev[k].data.u64;
			switch (kind) {
			case K_STREAM:
				if (M.out[idx].fd >= 0)
					stream_read(&M.out[idx]);
				break;
			case K_SIG:
				on_sigchld();
				break;
			case K_LISTEN:
				accept_clients();
				break;
			case K_CLIENT:
				if (M.cl[idx].state == CL_FREE)
					break;
				if (ev[k].events & EPOLLOUT)
					client_flush(idx);
				if (M.cl[idx].state != CL_FREE && (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
					client_read(idx);
				break;
			}
		}
		log_flush();
		if (phase != P_RUN)
			advance();
		if (did_control && phase == P_RUN) {
			int busy = 0;
			for (int i = 0; i < CMON_CLIENTS; i++)
				busy |= M.cl[i].state == CL_REQ || M.cl[i].state == CL_CLOSING;
			if (!busy) {
				did_control = 0;
				trim();
			}
		}
	}
}
