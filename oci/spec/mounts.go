package spec

import (
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// propagation maps the CRI's names to mount options. HostToContainer is
// rslave so that mounts made on the host later appear inside (kubelet CSI
// volumes depend on it); Bidirectional is rshared.
func propagation(p runtime.MountPropagation) (string, error) {
	switch p {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		return "rprivate", nil
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave", nil
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared", nil
	}
	return "", errdefs.InvalidArgument("mount propagation %v is unknown", p)
}

func addMounts(s *specs.Spec, mounts []*runtime.Mount) error {
	for _, m := range mounts {
		if !filepath.IsAbs(m.ContainerPath) {
			return errdefs.InvalidArgument("mount container_path %q is not absolute", m.ContainerPath)
		}
		if m.HostPath == "" && m.Image == nil {
			return errdefs.InvalidArgument("mount %q: host_path is required", m.ContainerPath)
		}
		if m.Image != nil && m.HostPath == "" {
			return errdefs.InvalidArgument("mount %q: image volumes need the image mounted first (host_path unresolved)", m.ContainerPath)
		}
		if m.RecursiveReadOnly && !m.Readonly {
			return errdefs.InvalidArgument("mount %q: recursive_read_only needs readonly", m.ContainerPath)
		}
		if m.RecursiveReadOnly && m.Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE {
			return errdefs.InvalidArgument("mount %q: recursive_read_only needs private propagation", m.ContainerPath)
		}
		prop, err := propagation(m.Propagation)
		if err != nil {
			return err
		}
		opts := []string{"rbind", prop}
		switch {
		case m.RecursiveReadOnly:
			opts = append(opts, "rro")
		case m.Readonly:
			opts = append(opts, "ro")
		default:
			opts = append(opts, "rw")
		}
		dst := filepath.Clean(m.ContainerPath)
		mnt := specs.Mount{Destination: dst, Type: "bind", Source: m.HostPath, Options: opts}
		if mnt.UIDMappings, mnt.GIDMappings, err = mountIDMaps(m); err != nil {
			return err
		}
		replaceMount(s, mnt)
		setRootPropagation(s, prop)
	}
	return nil
}

// setRootPropagation makes the container's root as open as its most open
// volume, as containerd does: a Bidirectional volume needs an rshared root
// (else the executor's default rslave root cuts its link to the host), a
// HostToContainer one at least rslave.
func setRootPropagation(s *specs.Spec, prop string) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	switch {
	case prop == "rshared":
		s.Linux.RootfsPropagation = "rshared"
	case prop == "rslave" && s.Linux.RootfsPropagation != "rshared":
		s.Linux.RootfsPropagation = "rslave"
	}
}

// replaceMount lets a kubelet mount shadow a default at the same destination
// (e.g. /dev/shm or /etc/hosts), and drops defaults below it.
func replaceMount(s *specs.Spec, m specs.Mount) {
	s.Mounts = slices.DeleteFunc(s.Mounts, func(o specs.Mount) bool {
		return o.Destination == m.Destination || strings.HasPrefix(o.Destination, m.Destination+"/") && m.Destination != "/"
	})
	s.Mounts = append(s.Mounts, m)
}

// addPodMounts shares the pod's files and /dev/shm. The kubelet's own
// mounts, added after, win where they collide (it mounts /etc/hosts itself
// for host-network pods).
func addPodMounts(s *specs.Spec, in Input) error {
	ro := in.Config.GetLinux().GetSecurityContext().GetReadonlyRootfs()
	opt := "rw"
	if ro {
		opt = "ro"
	}
	for _, f := range []struct{ src, dst string }{
		{in.HostnamePath, "/etc/hostname"}, {in.HostsPath, "/etc/hosts"}, {in.ResolvPath, "/etc/resolv.conf"},
	} {
		if f.src == "" {
			continue
		}
		if !filepath.IsAbs(f.src) {
			return errdefs.InvalidArgument("pod file %q is not absolute", f.src)
		}
		replaceMount(s, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"rbind", "rprivate", opt}})
	}
	if in.ShmPath != "" {
		replaceMount(s, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: in.ShmPath, Options: []string{"rbind", "rprivate", "rw"}})
	} else {
		replaceMount(s, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
	}
	return nil
}

// addDevices passes host devices through. The major/minor and type are read
// by the executor from the host path at create time (it must stat them
// anyway); here we record the path, permissions and the cgroup allow rule.
func addDevices(s *specs.Spec, devs []*runtime.Device) error {
	for _, d := range devs {
		if !filepath.IsAbs(d.HostPath) || !filepath.IsAbs(d.ContainerPath) {
			return errdefs.InvalidArgument("device %q -> %q: paths must be absolute", d.HostPath, d.ContainerPath)
		}
		perm := d.Permissions
		if perm == "" {
			perm = "rwm"
		}
		if strings.Trim(perm, "rwm") != "" {
			return errdefs.InvalidArgument("device %q: permissions %q are not a subset of rwm", d.HostPath, perm)
		}
		dev, err := hostDevice(d.HostPath, d.ContainerPath)
		if err != nil {
			return err
		}
		s.Linux.Devices = append(s.Linux.Devices, dev)
		major, minor := dev.Major, dev.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: perm})
	}
	return nil
}
