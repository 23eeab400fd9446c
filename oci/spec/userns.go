package spec

import (
	"math"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// User namespaces (the kubelet's hostUsers: false). The kubelet picks a
// range per pod (pkg/kubelet/userns: 65536 ids at a multiple of 65536) and
// sends it as one uid and one gid mapping with container id 0, mode POD;
// every container of the pod gets the same. As containerd and CRI-O, the
// pod has one user namespace that owns its network, IPC and UTS
// namespaces, and every container joins it.

// CheckPodUserNS validates a pod's userns_options before anything is made:
// mode NODE (or none) is the host's user namespace, POD needs exactly one
// uid and one gid mapping that map container id 0, CONTAINER and TARGET
// are not valid for a user namespace (the CRI says so).
func CheckPodUserNS(sb *runtime.PodSandboxConfig) error {
	nso := sb.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if err := checkUserNSOption(nso.GetUsernsOptions()); err != nil {
		return err
	}
	if !PodUserNS(sb) {
		return nil
	}
	// The kubelet refuses these with hostUsers: false too: a host namespace
	// owned by the host's user namespace cannot be used by the pod's root.
	for _, n := range []struct {
		name string
		mode runtime.NamespaceMode
	}{{"network", nso.GetNetwork()}, {"ipc", nso.GetIpc()}, {"pid", nso.GetPid()}} {
		if n.mode == runtime.NamespaceMode_NODE {
			return errdefs.InvalidArgument("namespace_options.%s: NODE is not allowed with a pod user namespace (hostUsers: false)", n.name)
		}
	}
	if sb.GetLinux().GetSecurityContext().GetPrivileged() {
		return errdefs.InvalidArgument("security_context.privileged: not allowed with a pod user namespace (hostUsers: false)")
	}
	return nil
}

func checkUserNSOption(u *runtime.UserNamespace) error {
	switch {
	case u == nil || u.GetMode() == runtime.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return errdefs.InvalidArgument("namespace_options.userns_options: mappings given with mode NODE (the host's user namespace)")
		}
		return nil
	case u.GetMode() != runtime.NamespaceMode_POD:
		return errdefs.InvalidArgument("namespace_options.userns_options: mode %v is not supported for a user namespace (POD or NODE)", u.GetMode())
	}
	if err := checkMapping("uids", u.GetUids()); err != nil {
		return err
	}
	return checkMapping("gids", u.GetGids())
}

// checkMapping: the kubelet sends one range, and the executor and the
// idmapped mounts assume one; container id 0 must be in it, or the
// container's root (and every file the image has as root's) is nobody.
func checkMapping(field string, ms []*runtime.IDMapping) error {
	if len(ms) != 1 {
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: exactly one mapping is supported, got %d", field, len(ms))
	}
	m := ms[0]
	switch {
	case m.GetLength() == 0:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: length 0", field)
	case m.GetContainerId() != 0:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: container id 0 must be mapped (mapping starts at %d)", field, m.GetContainerId())
	case uint64(m.GetHostId())+uint64(m.GetLength()) > math.MaxUint32:
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: host range %d+%d overflows", field, m.GetHostId(), m.GetLength())
	case m.GetHostId() == 0:
		// Mapping the host's root into the pod would make its root the
		// host's: that is hostUsers: true, asked for the wrong way.
		return errdefs.InvalidArgument("namespace_options.userns_options.%s: host id 0 must not be mapped", field)
	}
	return nil
}

// PodUserNS says whether the pod has its own user namespace. Mode POD is
// the enum's zero value, so an absent userns_options (every pod before
// user namespaces) must not count.
func PodUserNS(sb *runtime.PodSandboxConfig) bool {
	u := sb.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	return u != nil && u.GetMode() == runtime.NamespaceMode_POD
}

func podUserNS(sb *runtime.PodSandboxConfig) bool { return PodUserNS(sb) }

// PodIDMappings returns the pod's uid and gid mappings as the runtime
// spec has them (nil for the host's user namespace).
func PodIDMappings(sb *runtime.PodSandboxConfig) (uids, gids []specs.LinuxIDMapping) {
	if !PodUserNS(sb) {
		return nil, nil
	}
	u := sb.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	return idMappings(u.GetUids()), idMappings(u.GetGids())
}

func idMappings(ms []*runtime.IDMapping) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(ms))
	for _, m := range ms {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

// setUserNS puts the container in its pod's user namespace. A container
// may repeat the pod's userns_options (the kubelet does) but not differ:
// all containers of a pod share one user namespace.
func setUserNS(s *specs.Spec, in Input) error {
	podU := in.Sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if c := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(); c != nil {
		if err := checkUserNSOption(c); err != nil {
			return err
		}
		same := c.GetMode() == podU.GetMode() || (podU == nil && c.GetMode() == runtime.NamespaceMode_NODE)
		if !same || !sameMappings(c.GetUids(), podU.GetUids()) || !sameMappings(c.GetGids(), podU.GetGids()) {
			return errdefs.InvalidArgument("security_context.namespace_options.userns_options: differs from the pod's; all containers of a pod share its user namespace")
		}
	}
	if !PodUserNS(in.Sandbox) {
		return nil
	}
	if in.UserNS == "" {
		return errdefs.FailedPrecondition("pod %s asks for a user namespace but has none pinned", in.SandboxID)
	}
	if in.Config.GetLinux().GetSecurityContext().GetPrivileged() {
		return errdefs.InvalidArgument("security_context.privileged: not allowed in a pod with a user namespace (hostUsers: false)")
	}
	s.Linux.Namespaces = append([]specs.LinuxNamespace{{Type: specs.UserNamespace, Path: in.UserNS}}, s.Linux.Namespaces...)
	s.Linux.UIDMappings, s.Linux.GIDMappings = PodIDMappings(in.Sandbox)
	return nil
}

func sameMappings(a, b []*runtime.IDMapping) bool {
	return slices.EqualFunc(a, b, func(x, y *runtime.IDMapping) bool {
		return x.GetContainerId() == y.GetContainerId() && x.GetHostId() == y.GetHostId() && x.GetLength() == y.GetLength()
	})
}

// mountIDMaps carries a CRI mount's idmapping (the kubelet sets one on a
// volume it wants idmapped) to the runtime spec: the executor makes it an
// idmapped mount, or fails where the filesystem cannot be idmapped.
func mountIDMaps(m *runtime.Mount) (uids, gids []specs.LinuxIDMapping, err error) {
	if len(m.GetUidMappings()) == 0 && len(m.GetGidMappings()) == 0 {
		return nil, nil, nil
	}
	if len(m.GetUidMappings()) == 0 || len(m.GetGidMappings()) == 0 {
		return nil, nil, errdefs.InvalidArgument("mount %q: uid_mappings and gid_mappings must be given together", m.GetContainerPath())
	}
	return idMappings(m.GetUidMappings()), idMappings(m.GetGidMappings()), nil
}
