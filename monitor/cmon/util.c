/* Small helpers of the C monitor: time and JSON formatting, its own log,
 * files (the exit record, the OOM counter) and giving memory back. */
#include "cmon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

int readfile(const char *path, char *buf, size_t n)
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

void shed(void)
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

