// Package nsenter joins the user and mount namespaces of a container before
// the Go runtime starts: the kernel refuses setns of those to a multithreaded
// process, and a Go process is multithreaded from its first instruction. It
// also joins the cgroup v1 hierarchies while the process has one thread,
// which is the only way in that does not wait for an RCU grace period (see
// oci/cgroups.ForkJoin). For a container joining a user namespace by path
// it makes the container's other namespaces after the join
// (_CRISERVER_UNSHARE) and forks the init into a new PID namespace
// (userns.c); _CRISERVER_HOLD makes it a holder of the namespaces it was
// cloned with. The C constructor does nothing unless one of those
// variables is set, so a normal start of the binary pays a few getenv. Package oci imports it, so every binary that
// can run the container init links it.
package nsenter

/*
#cgo CFLAGS: -Wall
extern void criserver_nsenter(void);
void __attribute__((constructor)) criserver_nsenter_init(void) { criserver_nsenter(); }
*/
import "C"
