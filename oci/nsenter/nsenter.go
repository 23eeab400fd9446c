// Package nsenter joins the user and mount namespaces of a container before
// the Go runtime starts: the kernel refuses setns of those to a multithreaded
// process, and a Go process is multithreaded from its first instruction. The
// C constructor does nothing unless _CRISERVER_NSENTER is set, so a normal
// start of the binary pays one getenv. Import it for its side effect from
// main: _ "github.com/cri-server/cri-server/oci/nsenter".
package nsenter

/*
#cgo CFLAGS: -Wall
extern void criserver_nsenter(void);
void __attribute__((constructor)) criserver_nsenter_init(void) { criserver_nsenter(); }
*/
import "C"
