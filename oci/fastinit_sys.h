/* What the units of the fast init (fastinit*.c) share: the raw system
 * calls the child makes, which every unit must use (hence the macros over
 * the libc names, after the system headers), and their functions. */
#ifndef CRISERVER_FASTINIT_SYS_H
#define CRISERVER_FASTINIT_SYS_H

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
#ifndef FI_VM /* -DFI_VM=0 tries the fork path on x86_64 */
#if defined(__x86_64__)
#define FI_VM 1
#else
#define FI_VM 0
#endif
#endif
#define FI_STACK (256 * 1024)
/* The child's thread pointer, this far into its stack block (fastinit.c):
 * room below it for fi_ctx, above it for a thread control block. */
#define FI_TLS_OFF 4096

/* fi_ctx is the child's own state: with CLONE_VM a global would be
 * shared with the parent and with the other inits it is starting. */
struct fi_ctx {
	int err;
	int sync_fd; /* -1 once closed */
};

static inline struct fi_ctx *fi_ctx(void)
{
#if FI_VM
	uintptr_t sp;
	__asm__("mov %%rsp, %0" : "=r"(sp));
	return (struct fi_ctx *)(sp & ~(uintptr_t)(FI_STACK - 1));
#else
	extern struct fi_ctx fi_fork_ctx; /* the child's own copy (fastinit.c) */
	return &fi_fork_ctx;
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

/* fastinit_msg.c */
struct fi_buf {
	char b[2048];
	int n;
};
void fb_raw(struct fi_buf *f, const char *s);
void fb_int(struct fi_buf *f, long long v);
int fi_send_frame(const char *body, int n);
struct fi_err {
	const char *class, *field;
	long long req, allowed;
};
extern const struct fi_err fi_invalid;
void __attribute__((noreturn)) fail_full(const struct fi_err *e, const char *a, const char *b, const char *c, int err);
int64_t fi_now_ns(void);
#define fail(a, b, err) fail_full(NULL, a, b, NULL, err)
#define fail3(a, b, c, err) fail_full(NULL, a, b, c, err)
#define failinv(a, b, c, err) fail_full(&fi_invalid, a, b, c, err)

/* fastinit_paths.c */
int fi_pathcat(char *out, const char *a, const char *b);
void fi_procfd(char *out, int fd);
int fi_open_in_root(int root, const char *p, int flags);
int fi_resolve_in_root(int root, const char *dest, char *out);
int fi_mkdir_all_in_root(int root, const char *p);
int fi_dir_base(const char *p, char *dir, const char **base);
int fi_create_file_in_root(int root, const char *p);
unsigned long fi_statfs_flags(const char *path);

/* fastinit_mounts.c */
void fi_setup_rootfs(const struct fi_plan *p);
void fi_finish_rootfs(const struct fi_plan *p);

#endif
