// Package version holds the build's version, set by the linker:
// -ldflags "-X github.com/cri-server/cri-server/version.Version=v1.2.3".
package version

// Version of cri-server.
var Version = "0.1.0-dev"

// RuntimeName is what Version reports to the kubelet.
const RuntimeName = "cri-server"
