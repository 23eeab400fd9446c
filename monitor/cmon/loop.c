/* The C monitor's one event loop, single threaded: the container's output
 * to the CRI log (monitor/logger.go's format and rules) and to attached
 * clients, the control socket (monitor/control.go's protocol, attach.go's
 * frames), the init's exit (SIGCHLD), the drain and the exit record. */
#include "cmon.h"

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

enum { K_STREAM = 1, K_SIG, K_LISTEN, K_CLIENT };
enum { P_RUN, P_DRAIN, P_CLOSING, P_LINGER, P_FINAL };

/* In M, on its hot page, rather than on pages of their own: */
#define phase M.phase		/* P_* */
#define did_control M.did_control /* a client came since the last trim */
#define deadline M.deadline	/* ms, CLOCK_MONOTONIC, of the current phase */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ep_add(int fd, uint32_t ev, int kind, int idx)
{
	struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)kind << 32 | (uint32_t)idx};
	epoll_ctl(M.ep, EPOLL_CTL_ADD, fd, &e);
}

static void ep_mod(int fd, uint32_t ev, int kind, int idx)
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

static int log_reopen(void)
{
	if (M.logfd < 0)
		return 0;
	log_flush();
	close(M.logfd);
	M.logfd = open(M.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	return M.logfd < 0 ? -1 : 0;
}

/* ---- clients ---- */

static void stdin_ended(void);
static void listen_pause(int pause);

static void client_close(int i)
{
	struct client *c = &M.cl[i];
	if (c->state == CL_ATTACH && c->stdin_ok)
		stdin_ended();
	close(c->fd); /* leaves the epoll set with it */
	free(c->out);
	c->out = NULL;
	c->outoff = c->outn = c->outcap = 0;
	c->state = CL_FREE;
	listen_pause(0);
}

static void client_flush(int i)
{
	struct client *c = &M.cl[i];
	while (c->outoff < c->outn) {
		ssize_t r = write(c->fd, c->out + c->outoff, c->outn - c->outoff);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			if (!c->out_armed) {
				c->out_armed = 1;
				ep_mod(c->fd, EPOLLIN | EPOLLOUT, K_CLIENT, i);
			}
			return;
		}
		if (r < 0) {
			client_close(i);
			return;
		}
		c->outoff += (size_t)r;
	}
	c->outoff = c->outn = 0;
	if (c->out_armed) {
		c->out_armed = 0;
		ep_mod(c->fd, EPOLLIN, K_CLIENT, i);
	}
	if (c->state == CL_CLOSING)
		client_close(i);
}

/* client_queue appends to what waits for the client; 0 when it has more
 * queued than CMON_CLIENT_QUEUE and was dropped. */
static int client_queue(int i, const void *p, size_t n)
{
	struct client *c = &M.cl[i];
	if (c->outn + n > c->outcap) {
		size_t cap = c->outcap ? c->outcap : 4096;
		while (cap < c->outn + n)
			cap *= 2;
		if (cap > CMON_CLIENT_QUEUE) {
			/* Too slow: it loses its copy, the log loses nothing. */
			client_close(i);
			return 0;
		}
		if (c->outoff > 0) {
			memmove(c->out, c->out + c->outoff, c->outn - c->outoff);
			c->outn -= c->outoff;
			c->outoff = 0;
		}
		char *o = realloc(c->out, cap);
		if (!o) {
			client_close(i);
			return 0;
		}
		c->out = o;
		c->outcap = cap;
	}
	memcpy(c->out + c->outn, p, n);
	c->outn += n;
	return 1;
}

/* client_send writes at once what fits and queues the rest: a reply or a
 * chunk to a client that keeps up needs no heap. */
static int client_send(int i, const char *p, size_t n)
{
	struct client *c = &M.cl[i];
	while (c->outn == 0 && n > 0) {
		ssize_t r = write(c->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN) {
			client_close(i);
			return 0;
		}
		if (r < 0)
			break;
		p += r;
		n -= (size_t)r;
	}
	if (n > 0 && !client_queue(i, p, n))
		return 0;
	client_flush(i);
	return 1;
}

static void reply(int i, const char *err)
{
	char buf[2048];
	size_t n = format_reply(buf, sizeof buf, err);
	client_send(i, buf, n);
}

static void fanout(int frame, const char *p, size_t n)
{
	unsigned char hdr[5] = {(unsigned char)frame, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				(unsigned char)(n >> 8), (unsigned char)n};
	for (int i = 0; i < CMON_CLIENTS; i++) {
		if (M.cl[i].state != CL_ATTACH)
			continue;
		if (client_send(i, (const char *)hdr, 5))
			client_send(i, p, n);
	}
}

/* ---- the container's stdio ---- */

static void stdin_write(const char *p, size_t n)
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
static void stdin_ended(void)
{
	if (!M.stdin_once || M.console >= 0)
		return;
	if (M.stdin_fd >= 0 && !M.stdin_closed) {
		M.stdin_closed = 1;
		close(M.stdin_fd);
		mlog("INFO", "msg=\"container stdin closed (stdin_once)\"");
	}
}

static void resize(const unsigned char *p)
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

/* ---- control ---- */

static int release_fifo(char *err, size_t n);
static void attach_frames(int i, const unsigned char *p, size_t n);

static void op_start(char *err, size_t n)
{
	if (M.recorded) {
		snprintf(err, n, "container has exited");
		return;
	}
	if (M.started)
		return;
	if (M.reaped) {
		snprintf(err, n, "start container %s: init exited", M.id);
		return;
	}
	int r = M.fifo[0] ? release_fifo(err, n) : 1;
	if (r == 1) { /* hooks to run, or another executor: the Go side does it */
		char *argv[] = {"cri-server-shim", "monitor-op", ".", "start", NULL};
		err[0] = 0;
		if (run_helper(argv, err, n) != 0 && !err[0])
			snprintf(err, n, "start helper failed");
		r = err[0] ? -1 : 0;
	}
	if (r == 0) {
		M.started = 1;
		mlog("INFO", "msg=\"container started\"");
	}
}

static void op_kill(const struct request *rq, char *err, size_t n)
{
	if (M.recorded)
		return;
	if (M.reaped) {
		if (!rq->all)
			snprintf(err, n, "kill container %s: not running", M.id);
		return;
	}
	if (rq->all) { /* every process of its cgroup: the executor's job */
		char sig[8];
		snprintf(sig, sizeof sig, "%ld", rq->signal);
		char *argv[] = {"cri-server-shim", "monitor-op", ".", "kill", sig, NULL};
		err[0] = 0;
		if (run_helper(argv, err, n) != 0 && !err[0])
			snprintf(err, n, "kill helper failed");
		return;
	}
	if (kill(M.init, (int)rq->signal) < 0 && errno != ESRCH)
		snprintf(err, n, "kill container %s: %s", M.id, strerror(errno));
}

static void handle_request(int i, const char *line, size_t len)
{
	struct client *c = &M.cl[i];
	struct request rq;
	char err[1024] = "";
	if (parse_request(line, len, &rq, err, sizeof err) < 0) {
		c->state = CL_CLOSING;
		reply(i, err);
		return;
	}
	if (!strcmp(rq.op, "attach")) {
		if (M.recorded || phase >= P_CLOSING) {
			c->state = CL_CLOSING;
			reply(i, "container has exited");
			return;
		}
		/* As in containerd, input to a container without stdin is dropped. */
		c->stdin_ok = rq.stdin && M.stdin_cfg;
		c->state = CL_ATTACH;
		reply(i, NULL);
		mlog("INFO", "msg=\"client attached\" stdin=%s", c->stdin_ok ? "true" : "false");
		return;
	}
	if (!strcmp(rq.op, "wait")) {
		if (M.recorded) {
			c->state = CL_CLOSING;
			reply(i, NULL);
		} else {
			c->state = CL_WAIT;
		}
		return;
	}
	if (!strcmp(rq.op, "status")) {
	} else if (!strcmp(rq.op, "start")) {
		op_start(err, sizeof err);
	} else if (!strcmp(rq.op, "kill")) {
		op_kill(&rq, err, sizeof err);
	} else if (!strcmp(rq.op, "reopen-log")) {
		if (!M.recorded && log_reopen() < 0)
			snprintf(err, sizeof err, "reopen container log: %s", strerror(errno));
	} else {
		snprintf(err, sizeof err, "unknown op \"%s\"", rq.op);
	}
	c->state = CL_CLOSING;
	reply(i, err);
}

static void client_read(int i)
{
	struct client *c = &M.cl[i];
	if (c->state == CL_ATTACH) {
		unsigned char buf[16384];
		ssize_t r = read(c->fd, buf, sizeof buf);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			client_close(i);
			return;
		}
		attach_frames(i, buf, (size_t)r);
		return;
	}
	if (c->state != CL_REQ) { /* waiting, or closing: only notice a hang-up */
		char buf[512];
		ssize_t r = read(c->fd, buf, sizeof buf);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			client_close(i);
		return;
	}
	ssize_t r = read(c->fd, c->req + c->rn, sizeof c->req - c->rn);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		client_close(i);
		return;
	}
	c->rn += (size_t)r;
	char *nl = memchr(c->req, '\n', c->rn);
	if (!nl) {
		if (c->rn == sizeof c->req) {
			c->state = CL_CLOSING;
			reply(i, "bad request: longer than 4096 bytes");
		}
		return;
	}
	size_t len = (size_t)(nl - c->req), rest = c->rn - len - 1;
	handle_request(i, c->req, len);
	if (M.cl[i].state == CL_ATTACH && rest > 0)
		attach_frames(i, (unsigned char *)nl + 1, rest);
}

/* attach_frames takes the client's frames as they arrive, in any cut. */
static void attach_frames(int i, const unsigned char *p, size_t n)
{
	struct client *c = &M.cl[i];
	while (n > 0 && c->state == CL_ATTACH) {
		if (c->hn < 5) {
			c->hdr[c->hn++] = *p++;
			n--;
			if (c->hn < 5)
				continue;
			c->left = (uint32_t)c->hdr[1] << 24 | (uint32_t)c->hdr[2] << 16 | (uint32_t)c->hdr[3] << 8 | c->hdr[4];
			c->rszn = 0;
			if (c->left > CMON_MAX_FRAME) {
				client_close(i);
				return;
			}
		} else {
			size_t k = n < c->left ? n : c->left;
			if (c->hdr[0] == FRAME_STDIN && c->stdin_ok)
				stdin_write((const char *)p, k);
			if (c->hdr[0] == FRAME_RESIZE)
				for (size_t j = 0; j < k; j++)
					if (c->rszn < 4)
						c->rsz[c->rszn++] = p[j];
			p += k;
			n -= k;
			c->left -= (uint32_t)k;
		}
		if (c->hn == 5 && c->left == 0) {
			if (c->hdr[0] == FRAME_STDIN_CLOSE && c->stdin_ok)
				stdin_ended();
			uint32_t len = (uint32_t)c->hdr[1] << 24 | (uint32_t)c->hdr[2] << 16 | (uint32_t)c->hdr[3] << 8 | c->hdr[4];
			if (c->hdr[0] == FRAME_RESIZE && len == 4)
				resize(c->rsz);
			c->hn = 0;
		}
	}
}

/* With every slot taken the listener pauses: new callers wait in the
 * backlog (their request queued in the socket) until a slot frees, rather
 * than being hung up on, which a caller would take for a dead monitor. */
static int listen_paused;

static void listen_pause(int pause)
{
	if (pause == listen_paused || M.lsock < 0)
		return;
	listen_paused = pause;
	ep_mod(M.lsock, pause ? 0 : EPOLLIN, K_LISTEN, 0);
}

static void accept_clients(void)
{
	for (;;) {
		int free_slot = 0;
		for (int i = 0; i < CMON_CLIENTS && !free_slot; i++)
			free_slot = M.cl[i].state == CL_FREE;
		if (!free_slot) {
			listen_pause(1);
			return;
		}
		int fd = accept4(M.lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int i = 0;
		while (i < CMON_CLIENTS && M.cl[i].state != CL_FREE)
			i++;
		if (i == CMON_CLIENTS) {
			/* Unreachable: the listener is paused while full. */
			close(fd);
			continue;
		}
		/* Field by field: a literal would touch the whole request buffer. */
		struct client *c = &M.cl[i];
		c->fd = fd;
		c->state = CL_REQ;
		c->stdin_ok = c->out_armed = 0;
		c->rn = c->hn = c->rszn = 0;
		c->left = 0;
		did_control = 1;
		ep_add(fd, EPOLLIN, K_CLIENT, i);
	}
}

/* release_fifo is oci's releaseInit: read the byte the init writes to its
 * exec fifo. 1: no fifo there (another executor's layout): use the helper. */
static int release_fifo(char *err, size_t n)
{
	int fd = open(M.fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : (snprintf(err, n, "open exec fifo: %s", strerror(errno)), -1);
	long long until = now_ms() + 30000;
	int ret = -1;
	for (;;) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		int k = poll(&pf, 1, 100);
		if (k > 0) {
			char b;
			ssize_t r = read(fd, &b, 1);
			if (r == 1) {
				ret = 0;
				break;
			}
			if (r == 0) {
				snprintf(err, n, "start container %s: init exited", M.id);
				break;
			}
		}
		siginfo_t si = {0};
		if (waitid(P_PID, (id_t)M.init, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == M.init) {
			snprintf(err, n, "start container %s: init exited", M.id);
			break;
		}
		if (now_ms() > until) {
			snprintf(err, n, "start container %s: deadline exceeded", M.id);
			break;
		}
	}
	close(fd);
	if (ret == 0)
		unlink(M.fifo);
	return ret;
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
