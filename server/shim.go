package server

import (
	"fmt"
	"os"

	"github.com/cri-server/cri-server/oci"
)

// Option adjusts what New builds.
type Option func(*Server)

// WithShim makes bin (cmd/cri-server-shim, which cri-server embeds) the
// binary run as every container's monitor and as the init of every create
// and exec, in place of the whole daemon re-executed from /proc/self/exe:
// a monitor is then the C one the shim links (monitor/cmon, ~0.4 MB RSS)
// rather than the daemon's Go re-executed, and an init starts without the
// daemon's package init. An empty bin
// keeps /proc/self/exe (a plain `go build`, and the tests).
func WithShim(bin []byte) Option {
	return func(s *Server) { s.shimBin = bin }
}

// sealShim writes the shim into a sealed memfd that the server keeps open,
// and returns the path to execute it by, or "" without a shim. The path
// names the daemon's own fd (/proc/<pid>/fd/N, not /proc/self/fd/N): a
// child resolves it at exec, after its fds were shuffled into place, which
// could have replaced its own copy of N. The monitor's executor and the
// daemon's share this one memfd (oci.New does not copy a sealed one).
func (s *Server) sealShim() (string, error) {
	if len(s.shimBin) == 0 {
		s.log.Info("no embedded container shim: monitors and inits re-execute the daemon")
		return "", nil
	}
	f, err := oci.SealBinary("cri-server-shim", s.shimBin)
	if err != nil {
		return "", fmt.Errorf("seal shim: %w", err)
	}
	s.shim = f
	path := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	s.log.Info("container shim sealed", "path", path, "bytes", len(s.shimBin))
	s.shimBin = nil
	return path, nil
}
