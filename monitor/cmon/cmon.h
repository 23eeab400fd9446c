/* The C container monitor: see doc.go for why it exists. Its state and
 * what its files call across: start.c (start-up and create), loop.c (the
 * event loop, the log, the end), control.c (the control socket, with
 * loop.h), req.c (the request and reply JSON), util.c (helpers). */
#ifndef CMON_H
#define CMON_H
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CMON_LINE 16384	     /* monitor.MaxLineSize */
#define CMON_LOGBUF 65536    /* the log writer's buffer */
#define CMON_REQ 4096	     /* longest control request line */
#define CMON_CLIENTS 64	     /* control connections at once */
#define CMON_CLIENT_QUEUE (4 << 20) /* output queued for one attach client before it is dropped */
#define CMON_MAX_FRAME (1 << 20)    /* monitor.maxFrame */

enum { FRAME_STDOUT = 1, FRAME_STDERR, FRAME_STDIN, FRAME_STDIN_CLOSE, FRAME_RESIZE };

struct stream {
	int fd; /* -1 once at EOF */
	const char *name;
	int frame;
	size_t n;
	char *buf; /* CMON_LINE bytes, apart: the header stays on the hot page */
};

enum { CL_FREE, CL_REQ, CL_WAIT, CL_ATTACH, CL_CLOSING };

struct client {
	int fd, state, stdin_ok, out_armed;
	char req[CMON_REQ];
	size_t rn;
	/* attach frames from the client */
	unsigned char hdr[5];
	size_t hn;
	uint32_t left; /* payload bytes still to come of the current frame */
	unsigned char rsz[4];
	size_t rszn;
	/* queued output to the client */
	char *out;
	size_t outoff, outn, outcap;
};

struct exitrec {
	int code, signal, oom_killed;
	char exited_at[48];
	char message[256];
};

struct cmon {
	/* monitor.cfg; strings on the heap, together on one page rather than
	 * one page each of fixed arrays */
	char *id, *log_path;
	int stdin_cfg, stdin_once, terminal;
	/* from the create helper */
	pid_t init;
	uint64_t oom0;
	char *oom_path, *fifo;
	/* stdio */
	int stdin_fd, console, stdin_closed;
	struct stream out[2];
	/* the CRI log */
	int logfd;
	size_t wn;
	char *wbuf; /* CMON_LOGBUF bytes */
	/* the monitor's own log (monitor.log) */
	int mlog;
	/* the loop */
	int ep, sigfd, lsock, started, reaped, wstatus, oom_killed, recorded;
	char reaped_at[48];
	struct exitrec exit;
	/* the loop's phase after the init's exit (loop.c) */
	int phase, did_control;
	long long deadline;
	/* what shed found (util.c) */
	struct {
		unsigned long lo, hi;
	} shed_ranges[32];
	int nshed;
	unsigned long stack_lo;
	/* the strings above, when they fit: no heap, and on M's hot pages */
	char arena[2048];
	size_t arena_n;
	const char *bundle_arg;
	struct client cl[CMON_CLIENTS];
};

extern struct cmon M;

/* util.c */
int readfile(const char *path, char *buf, size_t n);
void shed(void);
void mlog(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void now_rfc3339(char *dst, size_t n);
void jsonesc(char *dst, size_t n, const char *s);
int write_exit_record(const struct exitrec *e);
uint64_t read_oom(const char *path);
void reshed(void);
void drop(void *p, size_t n);

/* loop.c */
void cmon_loop(void) __attribute__((noreturn));

/* start.c */
int run_helper(char *const argv[], char *out, size_t outn);

/* req.c */
struct request {
	char op[32];
	long signal;
	int all;
	/* Not "stdin": musl defines stdin as a macro, "(stdin)". */
	int want_stdin;
};
int parse_request(const char *line, size_t n, struct request *r, char *err, size_t errn);
size_t format_reply(char *dst, size_t n, const char *error);
#endif
