package podinit

/*
#cgo CFLAGS: -Wall -Os -fno-stack-protector
extern void criserver_podinit(int argc, char **argv);
extern int criserver_ctor_args(int argc, char **argv, char ***out);
void __attribute__((constructor)) criserver_podinit_ctor(int argc, char **argv)
{
	argc = criserver_ctor_args(argc, argv, &argv);
	criserver_podinit(argc, argv);
}
*/
import "C"

import _ "github.com/cri-server/cri-server/internal/cargs" // criserver_ctor_args, for musl
