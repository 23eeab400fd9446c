// Command executor-cli is a stand-in for cmd/cri-server with only the
// executor's entry points, for hack/bench-executor.sh: "init" (the container
// init) and "oci <verb>" (the runc-compatible command line).
package main

import (
	"os"

	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/cli"
	_ "github.com/cri-server/cri-server/oci/nsenter"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMain()
	}
	if len(os.Args) > 1 && os.Args[1] == "oci" {
		os.Exit(cli.Main(os.Args[2:]))
	}
	os.Exit(cli.Main(os.Args[1:]))
}
