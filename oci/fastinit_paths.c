/* Paths inside the container's root, resolved so that nothing escapes it
 * (inroot.go and filepath-securejoin, in C). */
#include "fastinit_sys.h"

/* ---- paths inside the root ---- */

/* pathcat writes a + "/" + b (a "" or "/" is the root) into out. */
int fi_pathcat(char *out, const char *a, const char *b)
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

void fi_procfd(char *out, int fd)
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
int fi_open_in_root(int root, const char *p, int flags)
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

/* next_comp copies the next component of *p into comp (256 bytes) and
 * moves *p past it; returns its length, 0 at the end, or -ENAMETOOLONG. */
static long next_comp(const char **p, char *comp)
{
	const char *s = *p;
	while (*s == '/')
		s++;
	size_t n = strcspn(s, "/");
	if (n >= 256)
		return -ENAMETOOLONG;
	memcpy(comp, s, n);
	comp[n] = '\0';
	*p = s + n;
	return (long)n;
}

/* resolve_in_root is filepath-securejoin's SecureJoin: dest with every
 * symlink (dangling ones too) resolved lexically inside the root, so a
 * mount point is made where a link points, inside the root. out is
 * absolute ("/" for the root). Returns 0 or -errno. */
int fi_resolve_in_root(int root, const char *dest, char *out)
{
	char rest[FI_PATH], tmp[FI_PATH], link[FI_PATH], comp[256];
	size_t outlen = 0;
	int links = 0;
	if (strlen(dest) >= FI_PATH)
		return -ENAMETOOLONG;
	strcpy(rest, dest);
	out[0] = '\0';
	const char *p = rest;
	for (;;) {
		long cn = next_comp(&p, comp);
		if (cn < 0)
			return (int)cn;
		if (cn == 0)
			break;
		size_t n = (size_t)cn;
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
		int dfd = fi_open_in_root(root, outlen ? out : "/", O_PATH | O_DIRECTORY);
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
int fi_mkdir_all_in_root(int root, const char *p)
{
	int fd = fi_open_in_root(root, p, O_PATH | O_DIRECTORY);
	if (fd >= 0)
		return fd;
	char cur[FI_PATH] = "/", next[FI_PATH], comp[256];
	const char *s = p;
	for (;;) {
		long cn = next_comp(&s, comp);
		if (cn < 0)
			return (int)cn;
		if (cn == 0)
			break;
		if (fi_pathcat(next, cur, comp) < 0)
			return -ENAMETOOLONG;
		fd = fi_open_in_root(root, next, O_PATH | O_DIRECTORY);
		if (fd >= 0) {
			close(fd);
			strcpy(cur, next);
			continue;
		}
		if (errno != ENOENT)
			return -errno;
		int pfd = fi_open_in_root(root, cur, O_PATH | O_DIRECTORY);
		if (pfd < 0)
			return -errno;
		int r = mkdirat(pfd, comp, 0755);
		int e = errno;
		close(pfd);
		if (r < 0 && e != EEXIST)
			return -e;
		strcpy(cur, next);
	}
	fd = fi_open_in_root(root, p, O_PATH | O_DIRECTORY);
	return fd < 0 ? -errno : fd;
}

/* dir_base splits p into its directory (FI_PATH bytes) and last
 * component; -ENAMETOOLONG if it does not fit. */
int fi_dir_base(const char *p, char *dir, const char **base)
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
int fi_create_file_in_root(int root, const char *p)
{
	int fd = fi_open_in_root(root, p, O_PATH);
	if (fd >= 0)
		return fd;
	char dir[FI_PATH];
	const char *base;
	if (fi_dir_base(p, dir, &base) < 0)
		return -ENAMETOOLONG;
	int dfd = fi_mkdir_all_in_root(root, dir);
	if (dfd < 0)
		return dfd;
	close(dfd);
	int d = fi_open_in_root(root, dir, O_RDONLY | O_DIRECTORY);
	if (d < 0)
		return -errno;
	fd = openat(d, base, O_CREAT | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0644);
	int e = errno;
	close(d);
	if (fd < 0 && e != EEXIST)
		return -e;
	if (fd >= 0)
		close(fd);
	fd = fi_open_in_root(root, p, O_PATH);
	return fd < 0 ? -errno : fd;
}

unsigned long fi_statfs_flags(const char *path)
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
