package spec

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	mseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/seccomp"
)

// maxProfileSize bounds a localhost profile: Docker's default is 20 KiB, so
// 1 MiB is generous, and the file is node-local but still user-supplied.
const maxProfileSize = 1 << 20

// Names of the deprecated seccomp_profile_path field (CRI before v1.19).
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// seccompProfile resolves the container's seccomp field. No profile at all
// is unconfined: the kubelet always sends one (RuntimeDefault unless the
// pod says Unconfined), and critest checks that nil means unconfined, as in
// containerd and CRI-O. caps is the bounding set: the default profile opens
// syscalls such as unshare or mount only to a container holding the
// capability they need.
func seccompProfile(in Input, caps []string) (*specs.LinuxSeccomp, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	p := sc.GetSeccomp()
	if p == nil {
		return legacySeccompProfile(sc.GetSeccompProfilePath(), caps)
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault:
		return DefaultSeccompProfile(caps)
	case runtime.SecurityProfile_Unconfined:
		return nil, nil
	case runtime.SecurityProfile_Localhost:
		return LocalhostSeccompProfile(p.GetLocalhostRef(), caps)
	}
	return nil, errdefs.InvalidArgument("security_context.seccomp: unknown profile type %v", p.GetProfileType())
}

func legacySeccompProfile(path string, caps []string) (*specs.LinuxSeccomp, error) {
	switch {
	case path == "" || path == profileUnconfined:
		return nil, nil
	case path == profileRuntimeDefault || path == profileDockerDefault:
		return DefaultSeccompProfile(caps)
	case strings.HasPrefix(path, profileLocalhost):
		return LocalhostSeccompProfile(strings.TrimPrefix(path, profileLocalhost), caps)
	}
	return nil, errdefs.InvalidArgument("security_context.seccomp_profile_path %q: want runtime/default, unconfined or localhost/<path>", path)
}

// DefaultSeccompProfile is the RuntimeDefault profile: Docker's, from
// github.com/moby/profiles/seccomp (the one Kubernetes' RuntimeDefault
// refers to in containerd and CRI-O), narrowed to this architecture, kernel
// and the container's bounding set.
func DefaultSeccompProfile(caps []string) (*specs.LinuxSeccomp, error) {
	p, err := mseccomp.GetDefaultProfile(boundingSpec(caps))
	if err != nil {
		return nil, fmt.Errorf("build default seccomp profile: %w", err)
	}
	return p, nil
}

// LocalhostSeccompProfile loads a profile file from the node, in Docker's
// format (names, archMap, includes/excludes) or the OCI one, and compiles it
// once here so that a bad profile fails CreateContainer with its reason
// instead of failing the container's start.
func LocalhostSeccompProfile(path string, caps []string) (*specs.LinuxSeccomp, error) {
	if !filepath.IsAbs(path) {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %q: not an absolute path", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp localhost profile: %v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %s: %v", path, err)
	}
	if len(b) > maxProfileSize {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %s: larger than %d bytes", path, maxProfileSize)
	}
	p, err := mseccomp.LoadProfile(string(b), boundingSpec(caps))
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %s: %v", path, err)
	}
	if p == nil || p.DefaultAction == "" {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %s: no defaultAction", path)
	}
	if _, _, err := seccomp.Compile(p); err != nil {
		return nil, fmt.Errorf("seccomp localhost profile %s: %w", path, err)
	}
	return p, nil
}

// boundingSpec is the part of a spec the profile library reads.
func boundingSpec(caps []string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
}
