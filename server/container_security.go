package server

import (
	"fmt"
	"os"
	"strings"
	"sync"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/spec"
)

// hostLSMs is probed once: the kernel's modules do not change while the
// daemon runs.
var hostLSMs = sync.OnceValue(spec.HostLSMs)

// securityInput adds the node's security defaults to a spec input: the
// configured default capability set (checked against the names the
// executor knows, so a typo in the config fails the create with the key's
// name instead of a capset error at start) and the node's LSMs.
func (s *Server) securityInput(in *spec.Input) error {
	if s.cfg != nil {
		caps := s.cfg.Security.DefaultCapabilities
		if err := spec.ValidateCapabilities(caps); err != nil {
			return fmt.Errorf("config key security.default_capabilities: %w", err)
		}
		in.DefaultCapabilities = caps
	}
	in.LSMs = hostLSMs()
	return nil
}

// checkPodSecurity refuses, before anything is created, a pod whose
// security context this runtime cannot honour (a user namespace).
func checkPodSecurity(cfg *runtime.PodSandboxConfig) error {
	return spec.CheckPodUserNS(cfg)
}

// securityFeatures are the Status features this runtime implements for
// security contexts: SupplementalGroupsPolicy (Merge and Strict, with the
// resolved ids in ContainerStatus.user).
func securityFeatures() *runtime.RuntimeFeatures {
	return &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true}
}

// securityInfo goes into the verbose Status info, for an operator asking
// what the node enforces: the CRI has no field for seccomp or the LSMs.
func securityInfo() map[string]string {
	l := hostLSMs()
	aa := "not on this node: RuntimeDefault and Unconfined are ignored, Localhost profiles refused"
	if l.AppArmor {
		aa = "enforced: RuntimeDefault (and no profile, unprivileged) is " + oci.DefaultAppArmorProfile + ", Localhost profiles applied"
	}
	se := "not on this node: selinux_options ignored"
	if l.SELinux {
		se = "on this node, not applied by cri-server: selinux_options refused"
	}
	userns := "not supported by this kernel"
	if userNamespacesSupported() {
		userns = "supported: pods with hostUsers: false get their own user namespace and idmapped rootfs"
	}
	return map[string]string{"seccomp": "enforced", "apparmor": aa, "selinux": se,
		"lsms": activeLSMs(), "userNamespaces": userns}
}

// activeLSMs is the kernel's list of active security modules.
func activeLSMs() string {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return "unknown (securityfs not mounted)"
	}
	return strings.TrimSpace(string(b))
}

// idmapRootfs makes the rootfs of a container in a pod with its own user
// namespace appear owned by the pod's ids (an overlay of idmapped layers):
// without it the image's files are the host root's, which the container's
// root cannot write, and nobody's inside.
func idmapRootfs(rootfs, userns string, sb *runtime.PodSandboxConfig) error {
	if userns == "" {
		return nil
	}
	uids, gids := spec.PodIDMappings(sb)
	if len(uids) == 0 || len(gids) == 0 {
		return nil
	}
	if err := oci.IdmapOverlay(rootfs, userns, int(uids[0].HostID), int(gids[0].HostID)); err != nil {
		return fmt.Errorf("idmap rootfs: %w", err)
	}
	return nil
}

// userNamespacesSupported: pods with hostUsers: false need user namespaces
// (a kernel may cap them at 0) and idmapped mounts for their rootfs,
// probed once.
var userNamespacesSupported = sync.OnceValue(oci.UserNSSupported)
