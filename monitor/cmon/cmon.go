package cmon

/*
#cgo CFLAGS: -Wall -Wextra -Wno-unused-parameter -O2
#include <stdlib.h>
#include <string.h>
extern void criserver_cmon(int argc, char **argv);
extern int criserver_ctor_args(int argc, char **argv, char ***out);
static void __attribute__((constructor)) criserver_cmon_ctor(int argc, char **argv)
{
	argc = criserver_ctor_args(argc, argv, &argv);
	if (argc < 2 || strcmp(argv[1], "monitor") != 0)
		return;
	const char *gomon = getenv("CRI_SERVER_GO_MONITOR");
	if (gomon && strcmp(gomon, "1") == 0)
		return;
	criserver_cmon(argc, argv);
}
*/
import "C"

import _ "github.com/cri-server/cri-server/internal/cargs" // criserver_ctor_args, for musl
