package podinit

/*
#cgo CFLAGS: -Wall -Os -fno-stack-protector
extern void criserver_podinit(int argc, char **argv);
void __attribute__((constructor)) criserver_podinit_ctor(int argc, char **argv) { criserver_podinit(argc, argv); }
*/
import "C"
