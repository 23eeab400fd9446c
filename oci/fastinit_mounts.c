/* The fast init's root filesystem: rootfs.go, propagation.go,
 * devices.go and cgroup_mount.go for the plan. */
#include "fastinit_sys.h"

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
	fail_full(inv ? &fi_invalid : NULL, pre, b.b, NULL, err);
}

static void mount_cgroup(int root, const struct fi_mount *m, const char *dest, int fd, const struct mctx *mc)
{
	char target[64], sub[FI_PATH];
	fi_procfd(target, fd);
	if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
		mfail(mc, "mount cgroup tmpfs", errno, 0);
	int tfd = fi_open_in_root(root, dest, O_PATH | O_DIRECTORY);
	if (tfd < 0)
		mfail(mc, "open cgroup tmpfs", errno, 0);
	fi_procfd(target, tfd);
	for (int i = 0; i < m->nsub; i++) {
		const struct fi_sub *s = &m->subs[i];
		if (fi_pathcat(sub, target, s->name) < 0)
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
	int r = fi_resolve_in_root(root, m->dest, dest);
	if (r < 0)
		mfail(&mc, "destination", -r, 1);
	const char *bad = check_proc_sys(dest, m->is_proc);
	if (bad)
		mfail(&mc, bad, 0, 1);
	int fd;
	switch (m->kind) {
	case FI_BIND:
		fd = m->bind_dir ? fi_mkdir_all_in_root(root, dest) : fi_create_file_in_root(root, dest);
		if (fd < 0)
			mfail(&mc, "make mount point", -fd, 0);
		fi_procfd(target, fd);
		if (mount(m->src, target, NULL, MS_BIND | (m->bind_rec ? MS_REC : 0), NULL) < 0)
			mfail(&mc, "bind", errno, 0);
		close(fd);
		/* The fd named the file under the new mount: open it again. */
		fd = fi_open_in_root(root, dest, O_PATH);
		if (fd < 0)
			mfail(&mc, "open mount", errno, 0);
		fi_procfd(target, fd);
		if (m->remount) {
			unsigned long fl = MS_BIND | MS_REMOUNT | m->remount | (fi_statfs_flags(target) & ~(unsigned long)MS_RDONLY);
			if (mount("", target, NULL, fl, NULL) < 0)
				mfail(&mc, "remount", errno, 0);
		}
		break;
	case FI_CGROUP:
		fd = fi_mkdir_all_in_root(root, dest);
		if (fd < 0)
			mfail(&mc, "make mount point", -fd, 0);
		mount_cgroup(root, m, dest, fd, &mc);
		close(fd);
		fd = fi_open_in_root(root, dest, O_PATH | O_DIRECTORY);
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
		fd = fi_mkdir_all_in_root(root, dest);
		if (fd < 0)
			mfail(&mc, "make mount point", -fd, 0);
		fi_procfd(target, fd);
		if (mount(m->src, target, m->fstype, m->flags, m->data) < 0)
			mfail(&mc, "mount", errno, 0);
		if (m->nprop > 0 || m->has_attr) {
			close(fd);
			fd = fi_open_in_root(root, dest, O_PATH | O_DIRECTORY);
			if (fd < 0)
				mfail(&mc, "open mount", errno, 0);
		}
	}
	fi_procfd(target, fd);
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
	if (fi_dir_base(d->path, dir, &base) < 0)
		failinv("linux.devices ", d->path, NULL, ENAMETOOLONG);
	int dfd = fi_mkdir_all_in_root(root, dir);
	if (dfd < 0)
		fail3("linux.devices ", d->path, ": make directory", -dfd);
	close(dfd);
	int fd = fi_open_in_root(root, dir, O_RDONLY | O_DIRECTORY);
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
	int d = fi_mkdir_all_in_root(root, "/dev");
	if (d < 0)
		fail("mkdir /dev", NULL, -d);
	close(d);
	d = fi_open_in_root(root, "/dev", O_RDONLY | O_DIRECTORY);
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

void fi_setup_rootfs(const struct fi_plan *p)
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

void fi_finish_rootfs(const struct fi_plan *p)
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
		if (mount("", m, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | fi_statfs_flags(m), NULL) < 0)
			fail("linux.readonlyPaths ", m, errno);
	}
	if (p->final_prop && mount("", "/", NULL, p->final_prop, NULL) < 0)
		fail("set rootfs propagation", NULL, errno);
	if (p->root_readonly && mount("", "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | fi_statfs_flags("/"), NULL) < 0)
		fail("remount root read-only", NULL, errno);
}
