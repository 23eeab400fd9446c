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
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "fastinit.h"

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#define FI_CLONE_INTO_CGROUP 0x200000000ULL
#define FI_RESOLVE_NO_MAGICLINKS 0x02
#define FI_RESOLVE_NO_SYMLINKS 0x04
#define FI_RESOLVE_IN_ROOT 0x10
#define FI_AT_RECURSIVE 0x8000
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif
#ifndef SYS_seccomp
#define SYS_seccomp 317
#endif
#ifndef MS_STRICTATIME
#define MS_STRICTATIME (1 << 24)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER 0x5441
#endif
#ifndef TIOCSPTLCK
#define TIOCSPTLCK 0x40045431
#endif
#define FI_ST_RDONLY 0x0001
#define FI_ST_NOSUID 0x0002
#define FI_ST_NODEV 0x0004
#define FI_ST_NOEXEC 0x0008
#define FI_ST_NOATIME 0x0400
#define FI_ST_NODIRATIME 0x0800
#define FI_ST_RELATIME 0x1000

struct fi_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
struct fi_open_how {
	uint64_t flags, mode, resolve;
};
struct fi_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
struct fi_cap_header {
	uint32_t version;
	int pid;
};
struct fi_cap_data {
	uint32_t effective, permitted, inheritable;
};
struct fi_sock_fprog {
	unsigned short len;
	const void *filter;
};

#define FI_PATH 4096

/* ---- system calls ----
 * On x86_64 the child shares the parent's memory (CLONE_VM, fastinit.h):
 * no page tables to copy, no copy-on-write faults (each a TLB shootdown
 * across the parent's threads) and no copied address space to tear down
 * at the final exec. It then runs on a stack of its own but with the
 * parent thread's TLS, so it must not write libc's errno: every call below
 * is a raw syscall instruction, and errno is redefined as a field at the
 * base of the child's stack (aligned to its size). Elsewhere the child is
 * a plain fork and libc's syscall() serves. */
#if defined(__x86_64__)
#define FI_VM 1
#else
#define FI_VM 0
#endif
#define FI_STACK (256 * 1024)

struct fi_ctx {
	int err;
};

static inline struct fi_ctx *fi_ctx(void)
{
#if FI_VM
	uintptr_t sp;
	__asm__("mov %%rsp, %0" : "=r"(sp));
	return (struct fi_ctx *)(sp & ~(uintptr_t)(FI_STACK - 1));
#else
	static struct fi_ctx g; /* the child's own copy */
	return &g;
#endif
}

static long fi_sys7(long n, long a, long b, long c, long d, long e, long f)
{
#if FI_VM
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if (r < 0 && r > -4096) {
		fi_ctx()->err = (int)-r;
		return -1;
	}
	return r;
#else
	long r = syscall(n, a, b, c, d, e, f);
	if (r < 0)
		fi_ctx()->err = errno;
	return r;
#endif
}

#define FI_PICK7(n, a, b, c, d, e, f, ...) fi_sys7(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define SC(...) FI_PICK7(__VA_ARGS__, 0, 0, 0, 0, 0, 0, 0)

#undef errno
#define errno (fi_ctx()->err)
#define write(fd, b, n) SC(SYS_write, fd, b, n)
#define open(...) SC(SYS_openat, AT_FDCWD, __VA_ARGS__)
#define openat(...) SC(SYS_openat, __VA_ARGS__)
#define close(fd) SC(SYS_close, fd)
#define mount(a, b, c, d, e) SC(SYS_mount, a, b, c, d, e)
#define umount2(a, b) SC(SYS_umount2, a, b)
#define mkdir(a, b) SC(SYS_mkdirat, AT_FDCWD, a, b)
#define mkdirat(a, b, c) SC(SYS_mkdirat, a, b, c)
#define readlinkat(a, b, c, d) SC(SYS_readlinkat, a, b, c, d)
#define chdir(a) SC(SYS_chdir, a)
#define fchdir(a) SC(SYS_fchdir, a)
#define lstat(a, b) SC(SYS_newfstatat, AT_FDCWD, a, b, AT_SYMLINK_NOFOLLOW)
#define stat(a, b) SC(SYS_newfstatat, AT_FDCWD, a, b, 0)
#define statfs(a, b) SC(SYS_statfs, a, b)
#define fchmodat(a, b, c, d) SC(SYS_fchmodat, a, b, c)
#define fchownat(a, b, c, d, e) SC(SYS_fchownat, a, b, c, d, e)
#define mknodat(a, b, c, d) SC(SYS_mknodat, a, b, c, d)
#define symlinkat(a, b, c) SC(SYS_symlinkat, a, b, c)
#define unlinkat(a, b, c) SC(SYS_unlinkat, a, b, c)
#define umask(a) SC(SYS_umask, a)
#define prctl(a, b, c, d, e) SC(SYS_prctl, a, b, c, d, e)
#define setsid() SC(SYS_setsid)
#define dup2(a, b) SC(SYS_dup3, a, b, 0)
#define unshare(a) SC(SYS_unshare, a)
#define sethostname(a, b) SC(SYS_sethostname, a, b)
#define setdomainname(a, b) SC(SYS_setdomainname, a, b)
#define execve(a, b, c) SC(SYS_execve, a, b, c)
#define syscall(...) SC(__VA_ARGS__)
#define _exit(c) (SC(SYS_exit_group, c), __builtin_unreachable())

/* ---- messages to the parent: the sync frames of sync.go ---- */

struct fi_buf {
	char b[2048];
	int n;
};

static void fb_raw(struct fi_buf *f, const char *s)
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

static void fb_int(struct fi_buf *f, long long v)
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

static int fi_sync_fd = -1;

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
static int send_frame(const char *body, int n)
{
	char frame[sizeof(struct fi_buf) + 4];
	frame[0] = n & 0xff, frame[1] = (n >> 8) & 0xff, frame[2] = (n >> 16) & 0xff, frame[3] = (n >> 24) & 0xff;
	memcpy(frame + 4, body, n);
	return write_all(fi_sync_fd, frame, n + 4);
}

/* A failure: msg is "<a><b>: <errno text>" (err 0: no errno text). class
 * "" or "invalid"/"privilege"; field/req/allowed for "privilege". The
 * parent rebuilds the typed error (errors.go: initError). */
struct fi_err {
	const char *class, *field;
	long long req, allowed;
};

static void __attribute__((noreturn)) fail_full(const struct fi_err *e, const char *a, const char *b, const char *c, int err)
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
	if (fi_sync_fd < 0 || send_frame(f.b, f.n) < 0) {
		/* Started already: the parent is gone, stderr is all we have. */
		msg.b[msg.n++] = '\n';
		(void)write_all(2, "cri-server init: ", 17);
		(void)write_all(2, msg.b, msg.n);
		_exit(127);
	}
	_exit(1);
}

static const struct fi_err invalid = {.class = "invalid"};

#define fail(a, b, err) fail_full(NULL, a, b, NULL, err)
#define fail3(a, b, c, err) fail_full(NULL, a, b, c, err)
#define failinv(a, b, c, err) fail_full(&invalid, a, b, c, err)

static int64_t now_ns(void)
{
	struct timespec ts;
	SC(SYS_clock_gettime, CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- paths inside the root ---- */

/* pathcat writes a + "/" + b (a "" or "/" is the root) into out. */
static int pathcat(char *out, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	while (la > 0 && a[la - 1] == '/')
		la--;
	if (la + 1 + lb + 1 > FI_PATH)
		return -ENAMETOOLONG;
	memcpy(out, a, la);
	out[la] = '/';
	memcpy(out + la + 1, b, lb + 1);
	return 0;
}

static void procfd(char *out, int fd)
{
	char num[16];
	int i = 0;
	unsigned u = (unsigned)fd;
	do
		num[i++] = '0' + u % 10;
	while ((u /= 10));
	memcpy(out, "/proc/self/fd/", 14);
	int n = 14;
	while (i > 0)
		out[n++] = num[--i];
	out[n] = '\0';
}

/* open_in_root opens p (absolute inside the root) with openat2
 * RESOLVE_IN_ROOT: ".." and absolute symlinks stay inside root. */
static int open_in_root(int root, const char *p, int flags)
{
	while (*p == '/')
		p++;
	if (*p == '\0')
		p = ".";
	struct fi_open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = FI_RESOLVE_IN_ROOT | FI_RESOLVE_NO_MAGICLINKS};
	for (;;) {
		long fd = syscall(SYS_openat2, root, p, &how, sizeof how);
		if (fd < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		return (int)fd;
	}
}

/* resolve_in_root is filepath-securejoin's SecureJoin: dest with every
 * symlink (dangling ones too) resolved lexically inside the root, so a
 * mount point is made where a link points, inside the root. out is
 * absolute ("/" for the root). Returns 0 or -errno. */
static int resolve_in_root(int root, const char *dest, char *out)
{
	char rest[FI_PATH], tmp[FI_PATH], link[FI_PATH], comp[256];
	size_t outlen = 0;
	int links = 0;
	if (strlen(dest) >= FI_PATH)
		return -ENAMETOOLONG;
	strcpy(rest, dest);
	out[0] = '\0';
	char *p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, "/");
		if (n >= sizeof comp)
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			while (outlen > 0 && out[outlen - 1] != '/')
				outlen--;
			if (outlen > 0)
				outlen--;
			out[outlen] = '\0';
			continue;
		}
		int dfd = open_in_root(root, outlen ? out : "/", O_PATH | O_DIRECTORY);
		ssize_t ln = -1;
		if (dfd >= 0) {
			ln = readlinkat(dfd, comp, link, sizeof link - 1);
			close(dfd);
		}
		if (ln < 0) { /* not a link, missing, or a parent that is not a directory */
			if (outlen + 1 + n + 1 > FI_PATH)
				return -ENAMETOOLONG;
			out[outlen++] = '/';
			memcpy(out + outlen, comp, n + 1);
			outlen += n;
			continue;
		}
		if (++links > 255)
			return -ELOOP;
		link[ln] = '\0';
		if (link[0] == '/') {
			outlen = 0;
			out[0] = '\0';
		}
		if ((size_t)ln + 1 + strlen(p) + 1 > FI_PATH)
			return -ENAMETOOLONG;
		memcpy(tmp, link, ln);
		tmp[ln] = '/';
		strcpy(tmp + ln + 1, p);
		strcpy(rest, tmp);
		p = rest;
	}
	if (outlen == 0)
		strcpy(out, "/");
	return 0;
}

/* mkdir_all_in_root creates p and its parents inside root, each with
 * mkdirat relative to its parent opened in the root; returns an O_PATH fd
 * or -errno. */
static int mkdir_all_in_root(int root, const char *p)
{
	int fd = open_in_root(root, p, O_PATH | O_DIRECTORY);
	if (fd >= 0)
		return fd;
	char cur[FI_PATH] = "/", next[FI_PATH], comp[256];
	const char *s = p;
	for (;;) {
		while (*s == '/')
			s++;
		if (*s == '\0')
			break;
		size_t n = strcspn(s, "/");
		if (n >= sizeof comp)
			return -ENAMETOOLONG;
		memcpy(comp, s, n);
		comp[n] = '\0';
		s += n;
		if (pathcat(next, cur, comp) < 0)
			return -ENAMETOOLONG;
		fd = open_in_root(root, next, O_PATH | O_DIRECTORY);
		if (fd >= 0) {
			close(fd);
			strcpy(cur, next);
			continue;
		}
		if (errno != ENOENT)
			return -errno;
		int pfd = open_in_root(root, cur, O_PATH | O_DIRECTORY);
		if (pfd < 0)
			return -errno;
		int r = mkdirat(pfd, comp, 0755);
		int e = errno;
		close(pfd);
		if (r < 0 && e != EEXIST)
			return -e;
		strcpy(cur, next);
	}
	fd = open_in_root(root, p, O_PATH | O_DIRECTORY);
	return fd < 0 ? -errno : fd;
}

/* dir_base splits p into its directory (FI_PATH bytes) and last
 * component; -ENAMETOOLONG if it does not fit. */
static int dir_base(const char *p, char *dir, const char **base)
{
	const char *slash = strrchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : 0;
	if (n >= FI_PATH)
		return -ENAMETOOLONG;
	memcpy(dir, p, n);
	dir[n] = '\0';
	if (n == 0)
		strcpy(dir, "/");
	*base = slash ? slash + 1 : p;
	return 0;
}

/* create_file_in_root makes p a file (a file bind mount's mount point);
 * returns an O_PATH fd or -errno. */
static int create_file_in_root(int root, const char *p)
{
	int fd = open_in_root(root, p, O_PATH);
	if (fd >= 0)
		return fd;
	char dir[FI_PATH];
	const char *base;
	if (dir_base(p, dir, &base) < 0)
		return -ENAMETOOLONG;
	int dfd = mkdir_all_in_root(root, dir);
	if (dfd < 0)
		return dfd;
	close(dfd);
	int d = open_in_root(root, dir, O_RDONLY | O_DIRECTORY);
	if (d < 0)
		return -errno;
	fd = openat(d, base, O_CREAT | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
	int e = errno;
	close(d);
	if (fd < 0 && e != EEXIST)
		return -e;
	if (fd >= 0)
		close(fd);
	fd = open_in_root(root, p, O_PATH);
	return fd < 0 ? -errno : fd;
}

static unsigned long statfs_flags(const char *path)
{
	struct statfs st;
	unsigned long f = 0;
	if (statfs(path, &st) != 0)
		return 0;
	if (st.f_flags & FI_ST_RDONLY)
		f |= MS_RDONLY;
	if (st.f_flags & FI_ST_NOSUID)
		f |= MS_NOSUID;
	if (st.f_flags & FI_ST_NODEV)
		f |= MS_NODEV;
	if (st.f_flags & FI_ST_NOEXEC)
		f |= MS_NOEXEC;
	if (st.f_flags & FI_ST_NOATIME)
		f |= MS_NOATIME;
	if (st.f_flags & FI_ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (st.f_flags & FI_ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* check_proc_sys is rootfs.go's checkProcSys on a resolved destination. */
static const char *check_proc_sys(const char *dest, int is_proc)
{
	static const char *const allowed[] = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
					      "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
					      "/proc/net/dev", "/proc/sys/kernel/ns_last_pid", NULL};
	if (is_proc)
		return strcmp(dest, "/proc") == 0 ? NULL : "proc may only be mounted at /proc";
	if (strncmp(dest, "/proc/", 6) == 0) {
		for (int i = 0; allowed[i]; i++)
			if (strcmp(dest, allowed[i]) == 0)
				return NULL;
		return "mounting over a /proc path is not allowed";
	}
	if (strcmp(dest, "/proc") == 0)
		return "only proc may be mounted at /proc";
	return NULL;
}

/* ---- mounts ---- */

struct mctx {
	int idx;
	const char *dest;
};

static void __attribute__((noreturn)) mfail(const struct mctx *m, const char *what, int err, int inv)
{
	char pre[64] = "mounts[";
	int n = 7, i = 0;
	char num[12];
	unsigned u = (unsigned)m->idx;
	do
		num[i++] = '0' + u % 10;
	while ((u /= 10));
	while (i > 0)
		pre[n++] = num[--i];
	pre[n++] = ']';
	pre[n++] = ' ';
	pre[n] = '\0';
	struct fi_buf b = {.n = 0};
	fb_raw(&b, m->dest);
	fb_raw(&b, ": ");
	fb_raw(&b, what);
	b.b[b.n] = '\0';
	fail_full(inv ? &invalid : NULL, pre, b.b, NULL, err);
}

static void mount_cgroup(int root, const struct fi_mount *m, const char *dest, int fd, const struct mctx *mc)
{
	char target[64], sub[FI_PATH];
	procfd(target, fd);
	if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
		mfail(mc, "mount cgroup tmpfs", errno, 0);
	int tfd = open_in_root(root, dest, O_PATH | O_DIRECTORY);
	if (tfd < 0)
		mfail(mc, "open cgroup tmpfs", errno, 0);
	procfd(target, tfd);
	for (int i = 0; i < m->nsub; i++) {
		const struct fi_sub *s = &m->subs[i];
		if (pathcat(sub, target, s->name) < 0)
			mfail(mc, "cgroup path", ENAMETOOLONG, 0);
		if (mkdir(sub, 0755) < 0 && errno != EEXIST)
			mfail(mc, "mkdir cgroup", errno, 0);
		if (!s->bind) {
			if (mount("cgroup", sub, s->fstype, s->flags, s->data) < 0)
				mfail(mc, "mount cgroup", errno, 0);
			continue;
		}
		if (mount(s->src, sub, NULL, MS_BIND, NULL) < 0)
			mfail(mc, "bind cgroup", errno, 0);
		if (s->remount && mount("", sub, NULL, s->remount, NULL) < 0)
			mfail(mc, "remount cgroup", errno, 0);
	}
	if (m->cg_batch) {
		struct fi_mount_attr a = {.attr_set = m->cg_attr};
		if (syscall(SYS_mount_setattr, -1, target, FI_AT_RECURSIVE, &a, sizeof a) < 0)
			mfail(mc, "set cgroup mount attributes", errno, 0);
	} else if (m->cg_ro &&
		   mount("", target, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0) {
		mfail(mc, "remount cgroup tmpfs", errno, 0);
	}
	close(tfd);
}

static void mount_one(int root, int idx, const struct fi_mount *m)
{
	char dest[FI_PATH], target[64];
	struct mctx mc = {.idx = idx, .dest = m->dest};
	int r = resolve_in_root(root, m->dest, dest);
	if (r < 0)
		mfail(&mc, "destination", -r, 1);
	const char *bad = check_proc_sys(dest, m->is_proc);
	if (bad)
		mfail(&mc, bad, 0, 1);
	int fd;
	switch (m->kind) {
	case FI_BIND:
		fd = m->bind_dir ? mkdir_all_in_root(root, dest) : create_file_in_root(root, dest);
		if (fd < 0)
			mfail(&mc, "make mount point", -fd, 0);
		procfd(target, fd);
		if (mount(m->src, target, NULL, MS_BIND | (m->bind_rec ? MS_REC : 0), NULL) < 0)
			mfail(&mc, "bind", errno, 0);
		close(fd);
		/* The fd named the file under the new mount: open it again. */
		fd = open_in_root(root, dest, O_PATH);
		if (fd < 0)
			mfail(&mc, "open mount", errno, 0);
		procfd(target, fd);
		if (m->remount) {
			unsigned long fl = MS_BIND | MS_REMOUNT | m->remount | (statfs_flags(target) & ~(unsigned long)MS_RDONLY);
			if (mount("", target, NULL, fl, NULL) < 0)
				mfail(&mc, "remount", errno, 0);
		}
		break;
	case FI_CGROUP:
		fd = mkdir_all_in_root(root, dest);
		if (fd < 0)
			mfail(&mc, "make mount point", -fd, 0);
		mount_cgroup(root, m, dest, fd, &mc);
		close(fd);
		fd = open_in_root(root, dest, O_PATH | O_DIRECTORY);
		if (fd < 0)
			mfail(&mc, "open mount", errno, 0);
		break;
	default:
		if (m->no_symlink) { /* an existing symlink at /proc would redirect the mount */
			struct fi_open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = FI_RESOLVE_IN_ROOT | FI_RESOLVE_NO_SYMLINKS};
			const char *rel = dest + 1;
			long lfd = syscall(SYS_openat2, root, *rel ? rel : ".", &how, sizeof how);
			if (lfd >= 0)
				close((int)lfd);
			else if (errno != ENOENT)
				mfail(&mc, "destination", errno, 1);
		}
		fd = mkdir_all_in_root(root, dest);
		if (fd < 0)
			mfail(&mc, "make mount point", -fd, 0);
		procfd(target, fd);
		if (mount(m->src, target, m->fstype, m->flags, m->data) < 0)
			mfail(&mc, "mount", errno, 0);
		if (m->nprop > 0 || m->has_attr) {
			close(fd);
			fd = open_in_root(root, dest, O_PATH | O_DIRECTORY);
			if (fd < 0)
				mfail(&mc, "open mount", errno, 0);
		}
	}
	procfd(target, fd);
	for (int i = 0; i < m->nprop; i++)
		if (mount("", target, NULL, m->prop[i], NULL) < 0)
			mfail(&mc, "set propagation", errno, 0);
	if (m->has_attr) {
		struct fi_mount_attr a = {.attr_set = m->attr_set, .attr_clr = m->attr_clr};
		if (syscall(SYS_mount_setattr, -1, target, FI_AT_RECURSIVE, &a, sizeof a) < 0)
			mfail(&mc, "set recursive mount attributes", errno, 0);
	}
	close(fd);
}

static void create_device(int root, const struct fi_dev *d)
{
	char dir[FI_PATH];
	const char *base;
	if (dir_base(d->path, dir, &base) < 0)
		failinv("linux.devices ", d->path, NULL, ENAMETOOLONG);
	int dfd = mkdir_all_in_root(root, dir);
	if (dfd < 0)
		fail3("linux.devices ", d->path, ": make directory", -dfd);
	close(dfd);
	int fd = open_in_root(root, dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		fail3("linux.devices ", d->path, ": open directory", errno);
	unlinkat(fd, base, 0);
	if (mknodat(fd, base, d->mode, d->rdev) < 0)
		fail3("linux.devices ", d->path, ": mknod", errno);
	if (fchmodat(fd, base, d->perm, 0) < 0) /* umask */
		fail3("linux.devices ", d->path, ": chmod", errno);
	if (fchownat(fd, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
		fail3("linux.devices ", d->path, ": chown", errno);
	close(fd);
}

static void dev_symlinks(int root, int kcore)
{
	static const char *const links[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
					       {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
					       {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"}};
	int d = mkdir_all_in_root(root, "/dev");
	if (d < 0)
		fail("mkdir /dev", NULL, -d);
	close(d);
	d = open_in_root(root, "/dev", O_RDONLY | O_DIRECTORY);
	if (d < 0)
		fail("open /dev", NULL, errno);
	for (int i = 0; i < 6; i++) {
		if (i == 5 && !kcore)
			break;
		if (symlinkat(links[i][0], d, links[i][1]) < 0 && errno != EEXIST)
			fail("symlink /dev/", links[i][1], errno);
	}
	close(d);
}

/* rootfs_parent_private is propagation.go's rootfsParentMountPrivate. */
static void rootfs_parent_private(const char *rootfs)
{
	char p[FI_PATH];
	if (strlen(rootfs) >= FI_PATH)
		failinv("root.path ", rootfs, NULL, ENAMETOOLONG);
	strcpy(p, rootfs);
	for (;;) {
		if (mount("", p, NULL, MS_PRIVATE, NULL) == 0)
			return;
		if (errno != EINVAL || strcmp(p, "/") == 0)
			fail("make parent mount of rootfs private ", p, errno);
		char *s = strrchr(p, '/');
		if (s == p)
			p[1] = '\0';
		else
			*s = '\0';
	}
}

static void pivot(const char *rootfs)
{
	int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (oldroot < 0)
		fail("open old root", NULL, errno);
	if (chdir(rootfs) < 0)
		fail("chdir rootfs", NULL, errno);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail("pivot_root", NULL, errno);
	if (fchdir(oldroot) < 0)
		fail("fchdir old root", NULL, errno);
	if (mount("", ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		fail("make old root rslave", NULL, errno);
	if (umount2(".", MNT_DETACH) < 0)
		fail("detach old root", NULL, errno);
	if (chdir("/") < 0)
		fail("chdir /", NULL, errno);
	close(oldroot);
}

static void setup_rootfs(const struct fi_plan *p)
{
	if (mount("", "/", NULL, p->root_prop, NULL) < 0)
		fail("set propagation of /", NULL, errno);
	rootfs_parent_private(p->rootfs);
	if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		fail("bind rootfs", NULL, errno);
	int root = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		fail("open rootfs", NULL, errno);
	for (int i = 0; i < p->nmounts; i++)
		mount_one(root, i, &p->mounts[i]);
	if (p->make_devices) {
		for (int i = 0; i < p->ndevs; i++)
			create_device(root, &p->devs[i]);
		dev_symlinks(root, p->kcore_link);
	}
	close(root);
	pivot(p->rootfs);
}

static void finish_rootfs(const struct fi_plan *p)
{
	struct stat st;
	for (int i = 0; i < p->nmasked; i++) {
		const char *m = p->masked[i];
		if (lstat(m, &st) < 0) {
			if (errno == ENOENT)
				continue;
			fail("linux.maskedPaths ", m, errno);
		}
		int r = S_ISDIR(st.st_mode) ? mount("tmpfs", m, "tmpfs", MS_RDONLY, "size=0") : mount("/dev/null", m, NULL, MS_BIND, NULL);
		if (r < 0)
			fail("linux.maskedPaths ", m, errno);
	}
	for (int i = 0; i < p->nreadonly; i++) {
		const char *m = p->readonly[i];
		if (mount(m, m, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if (errno == ENOENT)
				continue;
			fail("linux.readonlyPaths ", m, errno);
		}
		if (mount("", m, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | statfs_flags(m), NULL) < 0)
			fail("linux.readonlyPaths ", m, errno);
	}
	if (p->final_prop && mount("", "/", NULL, p->final_prop, NULL) < 0)
		fail("set rootfs propagation", NULL, errno);
	if (p->root_readonly && mount("", "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | statfs_flags("/"), NULL) < 0)
		fail("remount root read-only", NULL, errno);
}

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
	if (send_frame(body, sizeof body - 1) < 0)
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
	if (SC(SYS_sendmsg, fi_sync_fd, &msg, 0) < 0)
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
	int fd = open_in_root(root, p->cwd, O_PATH | O_DIRECTORY);
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
	int64_t t_main = now_ns();
	fi_sync_fd = p->sync_fd;
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
	 * /proc/<pid>/exe (the CVE-2019-5736 class). */
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
	setup_rootfs(p);
	for (int i = 0; i < p->nsysctl; i++) {
		int fd = open(p->sysctl_paths[i], O_WRONLY | O_CLOEXEC);
		size_t n = strlen(p->sysctl_vals[i]);
		if (fd < 0 || write(fd, p->sysctl_vals[i], n) != (ssize_t)n)
			failinv("linux.sysctl ", p->sysctl_keys[i], NULL, errno);
		close(fd);
	}
	finish_rootfs(p);
	int64_t t_rootfs = now_ns();
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
	if (send_frame(f.b, f.n) < 0)
		fail("send ready", NULL, errno);
	close(fi_sync_fd);
	fi_sync_fd = -1;
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
