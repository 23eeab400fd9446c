//go:build !embedshim

package main

// shimBinary is empty in a plain `go build`: the daemon re-executes itself
// (/proc/self/exe) as monitor and init, which main handles too. hack/build.sh
// embeds the small cmd/cri-server-shim instead (shim_embed.go).
var shimBinary []byte

var shimDigest string
