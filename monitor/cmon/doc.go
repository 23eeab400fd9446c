// Package cmon is the container monitor in C: linked into a binary (the
// shim, and the tests' binaries), it takes over `<binary> monitor <bundle>`
// from a constructor, before the Go runtime exists, and never returns. A Go
// monitor costs ~1.9 MB RSS per container for a loop that mostly waits (the
// runtime's floor); this one's private memory is the pages it touches, and
// the binary's file pages are shared by every monitor.
//
// It keeps monitor's contracts (the ready line of monitor.Spawn, the control
// protocol of monitor.Call and monitor.Attach, the CRI log format, the exit
// record) and leaves the executor to Go: the create runs in a short-lived
// child `<binary> monitor-create <bundle>` (monitor.CreateMain), whose init
// the monitor then reaps as the subreaper; a start with hooks and a kill of
// every process run in `<binary> monitor-op` (monitor.OpMain).
//
// CRI_SERVER_GO_MONITOR=1 in the monitor's environment keeps the Go monitor
// (monitor.Main). Without cgo the package is empty and the Go monitor runs.
package cmon
