//go:build embedshim

package main

import _ "embed"

// shimBinary is cmd/cri-server-shim, which hack/build.sh builds into this
// directory (git ignores it) just before it builds cri-server with the tag
// embedshim; the daemon runs it as every container's monitor and init.
//
//go:embed cri-server-shim
var shimBinary []byte

// shimDigest names shimBinary's content (the start of its SHA-256, which
// hack/build.sh writes beside it): the command line caches the shim on disk
// under that name, where hashing 7 MB at each start would cost more than
// the container.
//
//go:embed cri-server-shim.digest
var shimDigest string
