//go:build embedshim

package main

import _ "embed"

// shimBinary is cmd/cri-server-shim, which hack/build.sh builds into this
// directory (git ignores it) just before it builds cri-server with the tag
// embedshim; the daemon runs it as every container's monitor and init.
//
//go:embed cri-server-shim
var shimBinary []byte
