// Package cargs gives the project's C constructors (monitor/cmon,
// sandbox/podinit, cmd/cri-server's hand-over to the shim) the process's
// arguments whatever the libc: glibc passes argc and argv to an ELF
// constructor, musl (the static shim's libc, hack/build.sh) passes nothing.
// A package that calls criserver_ctor_args from its C imports this one for
// its side effect, which links cargs.c.
package cargs

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"
