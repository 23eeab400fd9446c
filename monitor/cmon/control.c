/* The control socket of the C monitor: connections, the request ops
 * (monitor/control.go's protocol), attach frames (attach.go) and the
 * output fanned out to attached clients. */
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- clients ---- */

static void listen_pause(int pause);

void client_close(int i)
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

void client_flush(int i)
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

void reply(int i, const char *err)
{
	char buf[2048];
	size_t n = format_reply(buf, sizeof buf, err);
	client_send(i, buf, n);
}

void fanout(int frame, const char *p, size_t n)
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
		c->stdin_ok = rq.want_stdin && M.stdin_cfg;
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

void client_read(int i)
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

void accept_clients(void)
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

