// Package nsenter joins the user and mount namespaces of a container before
// the Go runtime starts: the kernel refuses setns of those to a multithreaded
// process, and a Go process is multithreaded from its first instruction. It
// also joins the cgroup v1 hierarchies while the process has one thread,
// which is the only way in that does not wait for an RCU grace period (see
// oci/cgroups.ForkJoin). The C constructor does nothing unless
// _CRISERVER_CGROUP_FDS or _CRISERVER_NSENTER is set, so a normal start of
// the binary pays two getenv. Package oci imports it, so every binary that
// can run the container init links it.
package nsenter

/*
#cgo CFLAGS: -Wall
extern void criserver_nsenter(void);
void __attribute__((constructor)) criserver_nsenter_init(void) { criserver_nsenter(); }
*/
import "C"
