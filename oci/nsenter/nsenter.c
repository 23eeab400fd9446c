#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Report a failure to the parent as a sync frame on fd 3 (4-byte little-endian
 * length, then JSON), the same format as oci/sync.go, then exit. */
void criserver_fail(const char *what, const char *path, int err)
{
	char body[512], msg[300];
	snprintf(msg, sizeof msg, "nsenter: %s %s: %s", what, path, strerror(err));
	for (char *p = msg; *p; p++)
		if (*p == '"' || *p == '\\')
			*p = '\'';
	int n = snprintf(body, sizeof body, "{\"type\":\"error\",\"error\":{\"msg\":\"%s\"}}", msg);
	unsigned char hdr[4] = {n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff};
	if (write(3, hdr, 4) == 4 && write(3, body, n) == n) {
	}
	_exit(1);
}

/* _CRISERVER_CGROUP_FDS="5,6,7": cgroup v1 "tasks" files the parent opened
 * for us (oci/cgroups.ForkJoin). Writing "0" moves the calling thread only,
 * which is the whole process while no other thread exists, and the kernel
 * then skips the global lock whose write side waits for an RCU grace period
 * (see oci/cgroups/forkjoin.go). So this runs first, before any setns and
 * before the Go runtime starts its threads. */
#define fail criserver_fail

static void join_cgroups(void)
{
	const char *v = getenv("_CRISERVER_CGROUP_FDS");
	if (v == NULL || *v == '\0')
		return;
	while (*v) {
		char *end;
		long fd = strtol(v, &end, 10);
		if (end == v || fd < 3 || (*end != ',' && *end != '\0'))
			fail("parse", "_CRISERVER_CGROUP_FDS", EINVAL);
		ssize_t n;
		do
			n = write((int)fd, "0", 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			char which[32];
			snprintf(which, sizeof which, "tasks fd %ld", fd);
			fail("join cgroup", which, n < 0 ? errno : EIO);
		}
		close((int)fd);
		v = *end ? end + 1 : end;
	}
	unsetenv("_CRISERVER_CGROUP_FDS");
}

static void join_namespaces(void);

/* _CRISERVER_NEWCGROUPNS=1: a new cgroup namespace, made here rather than by
 * clone so that it is rooted at the container's cgroup, which
 * join_cgroups() has just entered (as runc does). */
static void new_cgroupns(void)
{
	const char *v = getenv("_CRISERVER_NEWCGROUPNS");
	if (v == NULL || *v == '\0')
		return;
	if (unshare(CLONE_NEWCGROUP) < 0)
		fail("unshare", "cgroup namespace", errno);
	unsetenv("_CRISERVER_NEWCGROUPNS");
}

void criserver_hold(void);
void criserver_unshare(void);
void criserver_become_root(void);

void criserver_nsenter(void)
{
	criserver_hold();
	join_cgroups();
	join_namespaces();
	criserver_unshare();
	new_cgroupns();
}

/* _CRISERVER_NSENTER="user:/proc/1/ns/user,cgroup:/proc/1/ns/cgroup,time:/proc/1/ns/time,mnt:/proc/1/ns/mnt",
 * in that order: paths under /proc must be opened before the mount
 * namespace changes. The kernel lets only a single-threaded process join
 * a time namespace (EUSERS), hence here too. */
static void join_namespaces(void)
{
	const char *v = getenv("_CRISERVER_NSENTER");
	if (v == NULL || *v == '\0')
		return;
	char *list = strdup(v);
	if (list == NULL)
		fail("parse", "env", ENOMEM);
	/* Every file is opened before the first setns, while we are the host's
	 * root in the host's namespaces: once in a container's user namespace
	 * we may no longer open another process's ns files (ptrace access,
	 * refused while the container's init has not yet exec'd), and once in
	 * its mount namespace the paths would resolve there. */
	struct {
		int fd, type;
		const char *path;
	} ns[4];
	int n = 0;
	char *save = NULL;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *path = strchr(tok, ':');
		if (path == NULL || n == 4)
			fail("parse", tok, EINVAL);
		*path++ = '\0';
		int type = 0;
		if (strcmp(tok, "user") == 0)
			type = CLONE_NEWUSER;
		else if (strcmp(tok, "mnt") == 0)
			type = CLONE_NEWNS;
		else if (strcmp(tok, "cgroup") == 0)
			type = CLONE_NEWCGROUP;
		else if (strcmp(tok, "time") == 0)
			type = CLONE_NEWTIME;
		else
			fail("parse", tok, EINVAL);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fail("open", path, errno);
		ns[n].fd = fd, ns[n].type = type, ns[n].path = path;
		n++;
	}
	for (int i = 0; i < n; i++) {
		if (setns(ns[i].fd, ns[i].type) < 0)
			fail("setns", ns[i].path, errno);
		close(ns[i].fd);
		if (ns[i].type == CLONE_NEWUSER)
			criserver_become_root();
	}
	free(list);
	unsetenv("_CRISERVER_NSENTER");
}
