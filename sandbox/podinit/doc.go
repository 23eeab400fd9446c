// Package podinit is the reaping init of a shared PID namespace, in C: a
// constructor that runs when the binary starts as "<exe> pod-init", before
// the Go runtime exists, and never returns. Any binary that links package
// sandbox links this, so a re-exec of it (cri-server, or a test binary) is
// a pod init of a few tens of kB instead of a Go process of ~13 MB.
// Without cgo the package is empty and the Go fallback in
// sandbox.PodInitMain runs instead.
package podinit
