// Command cri-server-shim holds only the entry points that cri-server
// re-executes once per container: the monitor (`monitor <bundle>`, one per
// running container, for its whole life: the C one of monitor/cmon, from a
// constructor, and its Go helpers `monitor-create` and `monitor-op`) and
// the container init (`init`, once per create and per exec). It links no gRPC, protobuf, CRI API,
// metrics or image code, so a monitor or an init starts without their
// package init and keeps none of their memory.
//
// It is not installed on its own: hack/build.sh builds it first and embeds
// it into cri-server (cmd/cri-server/shim_embed.go), which writes it into a
// sealed memfd at start and execs it from there. The two binaries are always
// built from the same tree, so they cannot drift apart.
package main

import (
	"fmt"
	"os"

	"github.com/cri-server/cri-server/monitor"
	// The container monitor in C: takes `monitor <bundle>` over before
	// the Go runtime starts.
	_ "github.com/cri-server/cri-server/monitor/cmon"
	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/cli"
	// Joins mount and user namespaces before the Go runtime starts, for
	// exec into a running container; inert unless the executor asks.
	_ "github.com/cri-server/cri-server/oci/nsenter"
)

// init runs the container init before main: see oci.InitMainFromInit. The
// main package's init runs after every other package's.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMainFromInit() // never returns
	}
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "oci":
			// `cri-server oci`, handed over by cri-server's constructor
			// (cmd/cri-server/ocishim_embed.go); its init is this binary.
			os.Exit(cli.Main(os.Args[2:]))
		default:
			// A container's monitor (C, from its constructor, unless
			// CRI_SERVER_GO_MONITOR=1) and the Go helpers it runs.
			monitor.NewExecutor = monitor.OCIExecutor
			if code, ok := monitor.Verb(os.Args[1:]); ok {
				os.Exit(code)
			}
		}
	}
	fmt.Fprintln(os.Stderr, "usage: cri-server-shim init | monitor <bundle> | monitor-create <bundle> | monitor-op <bundle> ... (run by cri-server, not by hand)")
	os.Exit(2)
}
