/* The fast init's messages to the parent: the sync frames of sync.go,
 * written without libc formatting. */
#include "fastinit_sys.h"

/* ---- messages to the parent: the sync frames of sync.go ---- */

void fb_raw(struct fi_buf *f, const char *s)
{
	while (*s && f->n < (int)sizeof f->b - 1)
		f->b[f->n++] = *s++;
}

/* fb_json appends s as the inside of a JSON string. */
static void fb_json(struct fi_buf *f, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (; *s && f->n < (int)sizeof f->b - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			f->b[f->n++] = '\\';
			f->b[f->n++] = c;
		} else if (c < 0x20) {
			f->b[f->n++] = '\\';
			f->b[f->n++] = 'u';
			f->b[f->n++] = '0';
			f->b[f->n++] = '0';
			f->b[f->n++] = hex[c >> 4];
			f->b[f->n++] = hex[c & 15];
		} else {
			f->b[f->n++] = c;
		}
	}
}

void fb_int(struct fi_buf *f, long long v)
{
	char tmp[24];
	int i = 0;
	unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
	do
		tmp[i++] = '0' + u % 10;
	while ((u /= 10) && i < 22);
	if (v < 0)
		tmp[i++] = '-';
	while (i > 0 && f->n < (int)sizeof f->b - 1)
		f->b[f->n++] = tmp[--i];
}

/* Go's texts for the errnos a setup meets, so that messages read as the
 * Go init's do; strerror may lock or allocate. */
static const char *fi_errstr(int e)
{
	switch (e) {
	case EPERM: return "operation not permitted";
	case ENOENT: return "no such file or directory";
	case ESRCH: return "no such process";
	case EINTR: return "interrupted system call";
	case EIO: return "input/output error";
	case E2BIG: return "argument list too long";
	case ENOEXEC: return "exec format error";
	case EBADF: return "bad file descriptor";
	case EAGAIN: return "resource temporarily unavailable";
	case ENOMEM: return "cannot allocate memory";
	case EACCES: return "permission denied";
	case EFAULT: return "bad address";
	case EBUSY: return "device or resource busy";
	case EEXIST: return "file exists";
	case EXDEV: return "invalid cross-device link";
	case ENODEV: return "no such device";
	case ENOTDIR: return "not a directory";
	case EISDIR: return "is a directory";
	case EINVAL: return "invalid argument";
	case EMFILE: return "too many open files";
	case ENOSPC: return "no space left on device";
	case EROFS: return "read-only file system";
	case ENAMETOOLONG: return "file name too long";
	case ENOSYS: return "function not implemented";
	case ELOOP: return "too many levels of symbolic links";
	case EOVERFLOW: return "value too large for defined data type";
	case EUSERS: return "too many users";
	}
	return NULL;
}

static void fb_errno(struct fi_buf *f, int e)
{
	const char *s = fi_errstr(e);
	if (s) {
		fb_raw(f, s);
		return;
	}
	fb_raw(f, "errno ");
	fb_int(f, e);
}


static int write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* send_frame writes body as a length-prefixed frame on the sync socket. */
int fi_send_frame(const char *body, int n)
{
	char frame[sizeof(struct fi_buf) + 4];
	frame[0] = n & 0xff, frame[1] = (n >> 8) & 0xff, frame[2] = (n >> 16) & 0xff, frame[3] = (n >> 24) & 0xff;
	memcpy(frame + 4, body, n);
	return write_all(fi_ctx()->sync_fd, frame, n + 4);
}

/* A failure: msg is "<a><b>: <errno text>" (err 0: no errno text). class
 * "" or "invalid"/"privilege"; field/req/allowed for "privilege". The
 * parent rebuilds the typed error (errors.go: initError). */
void __attribute__((noreturn)) fail_full(const struct fi_err *e, const char *a, const char *b, const char *c, int err)
{
	struct fi_buf msg = {.n = 0}, f = {.n = 0};
	fb_raw(&msg, a);
	if (b)
		fb_raw(&msg, b);
	if (c)
		fb_raw(&msg, c);
	if (err) {
		fb_raw(&msg, ": ");
		fb_errno(&msg, err);
	}
	msg.b[msg.n] = '\0';
	fb_raw(&f, "{\"type\":\"error\",\"error\":{\"msg\":\"");
	fb_json(&f, msg.b);
	fb_raw(&f, "\"");
	if (e && e->class) {
		fb_raw(&f, ",\"class\":\"");
		fb_raw(&f, e->class);
		fb_raw(&f, "\"");
	}
	if (e && e->field) {
		fb_raw(&f, ",\"field\":\"");
		fb_json(&f, e->field);
		fb_raw(&f, "\",\"requested\":");
		fb_int(&f, e->req);
		fb_raw(&f, ",\"allowed\":");
		fb_int(&f, e->allowed);
	}
	fb_raw(&f, "}}");
	if (fi_ctx()->sync_fd < 0 || fi_send_frame(f.b, f.n) < 0) {
		/* Started already: the parent is gone, stderr is all we have. */
		msg.b[msg.n++] = '\n';
		(void)write_all(2, "cri-server init: ", 17);
		(void)write_all(2, msg.b, msg.n);
		_exit(127);
	}
	_exit(1);
}

const struct fi_err fi_invalid = {.class = "invalid"};


int64_t fi_now_ns(void)
{
	struct timespec ts;
	SC(SYS_clock_gettime, CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
