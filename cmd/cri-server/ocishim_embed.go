//go:build embedshim

package main

/*
#cgo CFLAGS: -Wall -Wextra -O2
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// hack/build.sh writes it beside the shim: the shim's digest and size.
#include "cri-server-shim.h"

extern char **environ;

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

// criserver_oci_shim hands `cri-server oci ...` over to the shim, before
// the Go runtime starts: the shim holds the same command line
// (package oci/cli) without the daemon's 229 packages, whose init alone
// costs more than a container's start. It runs the copy that an earlier
// `cri-server oci` cached under the state root (oci.CachedBinary), and
// does nothing when there is none yet, or not of the shim's size, or
// the exec fails: the Go command line then runs here, and caches it.
static void __attribute__((constructor)) criserver_oci_shim(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "oci") != 0)
		return;
	const char *v = getenv("CRI_SERVER_OCI_IN_PROCESS");
	if (v && strcmp(v, "1") == 0)
		return;
	const char *root = oci_root(argc, argv);
	static char path[4096];
	int n = snprintf(path, sizeof(path), "%s/.init/%s", root, CRISERVER_SHIM_DIGEST);
	if (n < 0 || (size_t)n >= sizeof(path))
		return;
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != CRISERVER_SHIM_SIZE)
		return;
	int saved = errno;
	execve(path, argv, environ);
	errno = saved;
}
*/
import "C"
