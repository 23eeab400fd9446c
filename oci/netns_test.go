package oci_test

import (
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// lockAndPin creates a netns on this (discarded) thread and bind-mounts it.
func lockAndPin(pin string, done chan<- error) {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		done <- err
		return
	}
	done <- unix.Mount("/proc/thread-self/ns/net", pin, "", unix.MS_BIND, "")
}

// unixFcntlClearCloexec lets f survive an exec, as a careless caller's fd.
func unixFcntlClearCloexec(f *os.File) (int, error) {
	return unix.FcntlInt(f.Fd(), unix.F_SETFD, 0)
}
