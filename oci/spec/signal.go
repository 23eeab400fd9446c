package spec

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// StopSignal picks the signal StopContainer sends first: the kubelet's (a
// CRI Signal, from the pod's lifecycle.stopSignal) when set, else the
// image's STOPSIGNAL ("SIGQUIT", "QUIT" or "3"), else SIGTERM.
func StopSignal(kubelet string, image string) (unix.Signal, error) {
	for _, s := range []string{kubelet, image} {
		if s == "" || s == "RUNTIME_DEFAULT" {
			continue
		}
		return ParseSignal(s)
	}
	return unix.SIGTERM, nil
}

// ParseSignal accepts a name with or without SIG, or a number.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.InvalidArgument("signal %d is out of range", n)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, errdefs.InvalidArgument("signal %q is unknown", s)
}
