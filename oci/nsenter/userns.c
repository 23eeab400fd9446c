#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The user-namespace steps of the init's constructor (see nsenter.c for
 * the order). They exist for a container that joins a user namespace by
 * path (a pod's, pinned by sandbox/) and gets other namespaces of its own:
 * those must be made after the join, so that the joined user namespace
 * owns them. Made by clone in the parent, they would belong to the host's
 * user namespace, and the container's root could then mount neither proc
 * (the PID namespace's owner decides) nor sysfs (the network namespace's). */

void criserver_fail(const char *what, const char *path, int err);

/* criserver_become_root makes the caller, just moved into a user namespace
 * by setns, that namespace's root: until then it keeps the host's ids,
 * which the namespace does not map, and the kernel refuses it any file it
 * creates (EOVERFLOW) and checks it as "other" everywhere. Groups first:
 * setgroups needs the capabilities that setresuid would drop for a
 * non-root target. runc does the same after its setns. */
void criserver_become_root(void)
{
	if (setresgid(0, 0, 0) < 0)
		criserver_fail("setresgid", "0", errno);
	/* EPERM: the namespace was made with setgroups denied; the groups
	 * then stay those of the host, which the namespace shows as nobody. */
	if (setgroups(0, NULL) < 0 && errno != EPERM)
		criserver_fail("setgroups", "0", errno);
	if (setresuid(0, 0, 0) < 0)
		criserver_fail("setresuid", "0", errno);
}

/* _CRISERVER_TIMENS_OFFSETS="monotonic <secs> <nsecs>\nboottime ...": the
 * linux.timeOffsets of a new time namespace. The kernel takes them only
 * until a process enters the namespace, which is why it is made by
 * unshare here (it is then this process's time_for_children, which
 * /proc/self/timens_offsets sets) and entered by the fork below. */
static void set_time_offsets(void)
{
	const char *v = getenv("_CRISERVER_TIMENS_OFFSETS");
	if (v == NULL || *v == '\0')
		return;
	int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		criserver_fail("open", "/proc/self/timens_offsets", errno);
	size_t n = strlen(v);
	if (write(fd, v, n) != (ssize_t)n)
		criserver_fail("write", "/proc/self/timens_offsets", errno);
	close(fd);
	unsetenv("_CRISERVER_TIMENS_OFFSETS");
}

/* _CRISERVER_UNSHARE=<clone flags>: the namespaces to make once the joins
 * are done. A new PID or time namespace takes effect for children only, so
 * the init forks itself into it with CLONE_PARENT: the new process is the
 * parent's child (the parent can wait for it as for the first), pid 1 of
 * the new namespace. The first sends its pid on the sync socket as a
 * {"type":"pid"} frame and exits; the new one waits on a pipe until that
 * frame is written, so the parent always reads it first. */
void criserver_unshare(void)
{
	const char *v = getenv("_CRISERVER_UNSHARE");
	if (v == NULL || *v == '\0')
		return;
	char *end;
	long flags = strtol(v, &end, 10);
	if (end == v || *end != '\0')
		criserver_fail("parse", "_CRISERVER_UNSHARE", EINVAL);
	unsetenv("_CRISERVER_UNSHARE");
	if (unshare((int)flags) < 0)
		criserver_fail("unshare", v, errno);
	if (flags & CLONE_NEWTIME)
		set_time_offsets();
	if ((flags & (CLONE_NEWPID | CLONE_NEWTIME)) == 0)
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		criserver_fail("pipe", "fork barrier", errno);
	long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		criserver_fail("clone", "init", errno);
	if (pid == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) < 0 && errno == EINTR) {
		}
		close(p[0]);
		return;
	}
	char body[64];
	int n = snprintf(body, sizeof body, "{\"type\":\"pid\",\"pid\":%ld}", pid);
	unsigned char hdr[4] = {n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff};
	int ok = write(3, hdr, 4) == 4 && write(3, body, n) == n;
	close(p[1]);
	if (!ok)
		kill((pid_t)pid, SIGKILL);
	_exit(ok ? 0 : 1);
}

/* _CRISERVER_HOLD=1: the process only holds the namespaces it was cloned
 * with until its parent kills it (oci.NewUserNS: a user namespace for
 * idmapped mounts). No Go runtime is started for that. */
void criserver_hold(void)
{
	const char *v = getenv("_CRISERVER_HOLD");
	if (v == NULL || *v == '\0')
		return;
	for (;;)
		pause();
}
