// Package oci owns the executor: it turns an OCI runtime spec (runtime-spec
// v1.3.0) and a root filesystem into a running, isolated process tree and back.
// It knows nothing of CRI or gRPC.
//
// For the common spec (no user namespace, no namespace joined by path in
// the init, no hooks the init runs or waits for, no terminal, LSM label,
// personality, scheduler or I/O priority) the container init is a fork of
// the runtime's process that runs C (fastinit.c) on a plan laid out before
// the fork (fastinit_linux.go): no exec, no Go runtime in the init. It
// needs /proc/self/exe to be unwritable (a sealed memfd or a read-only
// mount), and CRI_SERVER_GO_INIT=1 turns it off. Otherwise the container
// init is this binary re-executed with the argument "init"
// (InitMain). Parent and init speak typed JSON messages over a SOCK_SEQPACKET
// pair passed as fd 3; the init sets up namespaces it cannot get from clone
// flags, the root filesystem, the console and the credentials, then waits on
// StateDir/<id>/exec.fifo (the create/start barrier) and execs the user's
// process, so no Go runtime stays inside the container.
//
// Joining a mount or user namespace is impossible from a multithreaded
// process, and every Go process is one. Net, UTS, IPC, PID and time
// namespaces are joined per thread in the parent (lock the OS thread, setns,
// fork from it). Mount, user and cgroup namespaces are joined by the C
// constructor in oci/nsenter, which runs before the Go runtime starts and only when
// _CRISERVER_NSENTER is set, so a normal start pays nothing for it. The same
// constructor joins the cgroup v1 hierarchies while the init has a single
// thread (oci/cgroups.ForkJoin); this package imports oci/nsenter so that
// every binary able to run InitMain has it.
package oci

import _ "github.com/cri-server/cri-server/oci/nsenter" // the init's C constructor
