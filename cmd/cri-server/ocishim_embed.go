//go:build embedshim

package main

/*
#cgo CFLAGS: -Wall -Wextra -O2
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// hack/build.sh writes it beside the shim: the shim's digest and size.
#include "cri-server-shim.h"

extern char **environ;

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#define SHIM_ATTR_RDONLY 0x1
#define SHIM_ATTR_NOSUID 0x2
#define SHIM_ATTR_NODEV 0x4
struct shim_mount_attr {
	unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

// oci_root is the --root of `cri-server oci [global flags] <verb>`, as
// Go's flag package would parse it (one or two dashes, "=value" or the
// next argument), or runc's default.
static const char *oci_root(int argc, char **argv)
{
	const char *root = "/run/cri-server-oci";
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || strcmp(a, "-") == 0 || strcmp(a, "--") == 0)
			break; // the verb, or the end of the flags
		a += a[1] == '-' ? 2 : 1;
		const char *eq = strchr(a, '=');
		size_t n = eq ? (size_t)(eq - a) : strlen(a);
		int valued = (n == 4 && strncmp(a, "root", 4) == 0) || (n == 3 && strncmp(a, "log", 3) == 0) ||
			     (n == 10 && strncmp(a, "log-format", 10) == 0);
		if (!valued || eq) {
			if (n == 4 && strncmp(a, "root", 4) == 0)
				root = eq + 1;
			continue;
		}
		if (i + 1 >= argc)
			break;
		if (n == 4)
			root = argv[i + 1];
		i++;
	}
	return root;
}

// private_fd accepts what fd (opened O_PATH or O_RDONLY) names if it is
// ours and nobody else may write to it: we are about to execute it.
static int private_fd(int fd, int want_type)
{
	struct stat st;
	return fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == (mode_t)want_type &&
	       st.st_uid == geteuid() && (st.st_mode & 022) == 0;
}

// internal/cargs: the arguments, which musl does not pass to constructors.
extern int criserver_ctor_args(int argc, char **argv, char ***out);

// criserver_oci_shim hands `cri-server oci ...` over to the shim, before
// the Go runtime starts: the shim holds the same command line
// (package oci/cli) without the daemon's 229 packages, whose init alone
// (~2 ms) is a sixth of a whole `oci run`. It runs the copy that an earlier
// `cri-server oci` cached under the state root (oci.CachedBinary), and
// only if the root, its .init and the copy are ours and writable by nobody
// else (oci.CachedBinary's rule: a root others can write to could hold
// anything). It does nothing when there is no such copy, or not of the
// shim's size, or the exec fails: the Go command line then runs here,
// and caches it.
static void __attribute__((constructor)) criserver_oci_shim(int argc, char **argv)
{
	argc = criserver_ctor_args(argc, argv, &argv);
	if (argc < 2 || strcmp(argv[1], "oci") != 0)
		return;
	const char *v = getenv("CRI_SERVER_OCI_IN_PROCESS");
	if (v && strcmp(v, "1") == 0)
		return;
	int saved = errno;
	int root = open(oci_root(argc, argv), O_PATH | O_DIRECTORY | O_CLOEXEC);
	int dir = private_fd(root, S_IFDIR) ? openat(root, ".init", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
	int bin = private_fd(dir, S_IFDIR) ? openat(dir, CRISERVER_SHIM_DIGEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	struct stat st;
	if (private_fd(bin, S_IFREG) && fstat(bin, &st) == 0 && st.st_size == CRISERVER_SHIM_SIZE) {
		// Through a detached read-only mount of the copy, as oci's
		// sealedExe does: the shim's /proc/self/exe is then a file
		// nobody can write, so it may fork container inits (a container
		// process reaching it could otherwise overwrite it, the
		// CVE-2019-5736 class), and its Runtime uses it as the init
		// binary without a mount of its own.
		int tree = (int)syscall(SYS_open_tree, bin, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
		struct shim_mount_attr a = {.attr_set = SHIM_ATTR_RDONLY | SHIM_ATTR_NOSUID | SHIM_ATTR_NODEV};
		if (tree >= 0 && syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &a, sizeof a) == 0)
			syscall(SYS_execveat, tree, "", argv, environ, AT_EMPTY_PATH);
		if (tree >= 0)
			close(tree);
		syscall(SYS_execveat, bin, "", argv, environ, AT_EMPTY_PATH);
	}
	if (bin >= 0)
		close(bin);
	if (dir >= 0)
		close(dir);
	if (root >= 0)
		close(root);
	errno = saved;
}
*/
import "C"

import _ "github.com/cri-server/cri-server/internal/cargs" // criserver_ctor_args, for musl
