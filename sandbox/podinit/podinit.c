#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The reaping init of a shared PID namespace, entered from a constructor
 * before the Go runtime starts. A Go runtime costs ~13 MB RSS per pod for a
 * loop that only waits. Even libc and the dynamic loader cost ~1.3 MB of
 * resident (if shared) pages, so on x86-64 the init then sheds
 * every mapping but the few pages of code below and its stack: the loop
 * makes raw system calls and touches nothing else, and the pod costs tens
 * of kB.
 *
 * SIGCHLD, SIGTERM and SIGINT are blocked and taken with rt_sigtimedwait: a
 * blocked signal is queued even for a namespace init (the kernel drops only
 * unblocked default-handled ones), so the daemon's SIGTERM ends the pod as
 * the pause container's would, and a child dying between the wait4 loop
 * and the wait for a signal leaves its SIGCHLD pending instead of lost. */

/* x86-64 only: the only architecture where shedding is tested (the code
 * must not touch a literal pool or a jump table in .rodata once shed);
 * elsewhere the init keeps libc mapped and costs ~1.6 MB RSS, ~0.2 MB PSS. */
#if defined(__x86_64__) && defined(__GLIBC__) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define SHED 1
#define SHED_RSEQ 1
#include <sys/rseq.h>
#elif defined(__x86_64__) && !defined(__GLIBC__)
/* musl (hack/build.sh's static build) registers no rseq area. */
#define SHED 1
#endif

/* Everything the init runs after shedding lives in this section; the
 * linker defines __start_/__stop_ around it. It must call nothing outside
 * it: no libc, no stack protector (its canary lives in the TLS block, which
 * is shed: hence -fno-stack-protector), no loop the compiler could turn
 * into memset or memcpy. TestPodInitIsSmall and the PID tests of package
 * sandbox catch a slip: the init would die at once. */
#define KEPT __attribute__((section("criserver_podinit_text"), noinline, used))
#define INLINE static inline __attribute__((always_inline))

extern char __start_criserver_podinit_text[], __stop_criserver_podinit_text[];

INLINE long sys4(long n, long a, long b, long c, long d)
{
#if defined(__x86_64__)
	long ret;
	register long r10 __asm__("r10") = d;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
	return ret;
#else
	return syscall(n, a, b, c, d);
#endif
}

/* The kernel's sigset for rt_sig*: one word, signal n at bit n-1. */
#define MASK ((1UL << (SIGCHLD - 1)) | (1UL << (SIGTERM - 1)) | (1UL << (SIGINT - 1)))

KEPT __attribute__((noreturn)) static void reap_forever(void)
{
	unsigned long mask = MASK;
	for (;;) {
		while (sys4(SYS_wait4, -1, 0, WNOHANG, 0) > 0) {
		}
		long sig = sys4(SYS_rt_sigtimedwait, (long)&mask, 0, 0, sizeof mask);
		if (sig == SIGTERM || sig == SIGINT)
			sys4(SYS_exit_group, 0, 0, 0, 0);
	}
}

#ifdef SHED
/* glibc registers the thread's rseq area (in the TLS block) with the
 * kernel, which writes to it on every preemption and kills the process
 * with SIGSEGV once it is unmapped: unregister it first, with the length
 * glibc used (32 before 2.40, __rseq_size after). */
static int rseq_gone(void)
{
#ifndef SHED_RSEQ
	return 1;
#else
	if (__rseq_size == 0)
		return 1;
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	unsigned int lens[] = {32, __rseq_size};
	for (unsigned i = 0; i < 2; i++)
		if (syscall(SYS_rseq, area, lens[i], RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0)
			return 1;
	return 0;
#endif
}

KEPT static unsigned long parse_hex(const char **p)
{
	unsigned long v = 0;
	for (;; (*p)++) {
		char c = **p;
		if (c >= '0' && c <= '9')
			v = v << 4 | (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (unsigned long)(c - 'a' + 10);
		else
			return v;
	}
}

/* shed_and_reap unmaps every mapping but the pages of this section and the
 * stack, then reaps; it never returns, since its caller's code is gone. It
 * reads the whole map before unmapping anything, and gives up (keeping
 * everything: only memory is at stake) if the map does not fit. */
KEPT __attribute__((noreturn)) static void shed_and_reap(const char *maps_path)
{
	char buf[16384];
	long fd = sys4(SYS_openat, AT_FDCWD, (long)maps_path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		reap_forever();
	long n = 0;
	for (;;) {
		long r = sys4(SYS_read, fd, (long)buf + n, (long)sizeof buf - n, 0);
		if (r <= 0)
			break;
		n += r;
		if (n == (long)sizeof buf) {
			sys4(SYS_close, fd, 0, 0, 0);
			reap_forever();
		}
	}
	sys4(SYS_close, fd, 0, 0, 0);
	unsigned long page = 4096; /* the smallest page: keeping more is harmless */
	unsigned long keep_lo = (unsigned long)__start_criserver_podinit_text & ~(page - 1);
	unsigned long keep_hi = ((unsigned long)__stop_criserver_podinit_text + page - 1) & ~(page - 1);
	/* The frame's top, not buf: the stack may have grown down over buf
	 * during the read, after the kernel printed its bounds. */
	unsigned long sp = (unsigned long)__builtin_frame_address(0);
	const char *p = buf, *end = buf + n;
	while (p < end) {
		unsigned long lo = parse_hex(&p);
		p++; /* '-' */
		unsigned long hi = parse_hex(&p);
		while (p < end && *p != '\n')
			p++;
		p++;
		if (sp >= lo && sp < hi)
			continue; /* the stack: argv, env and this frame */
		if (keep_lo < hi && keep_hi > lo) {
			if (keep_lo > lo)
				sys4(SYS_munmap, lo, keep_lo - lo, 0, 0);
			if (hi > keep_hi)
				sys4(SYS_munmap, keep_hi, hi - keep_hi, 0, 0);
			continue;
		}
		/* [vsyscall] refuses (EINVAL): harmless. */
		sys4(SYS_munmap, lo, hi - lo, 0, 0);
	}
	reap_forever();
}
#endif

/* Called by the constructor (podinit.go) with the process's arguments;
 * only "<exe> pod-init" stops here, every other start of the binary pays
 * one strcmp. */
void criserver_podinit(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "pod-init") != 0)
		return;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	/* Hold no directory of the host busy. */
	if (chdir("/") != 0) {
	}
#ifdef SHED
	if (rseq_gone()) {
		char maps[] = "/proc/self/maps";
		shed_and_reap(maps);
	}
#endif
	reap_forever();
}
