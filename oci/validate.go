package oci

import (
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
)

// validateSpec refuses what we cannot honour, naming the field. An AppArmor
// profile on a node without AppArmor, and any SELinux label, are refused
// rather than ignored: a profile silently dropped is a security hole.
func validateSpec(s *specs.Spec) error {
	switch {
	case s == nil:
		return errdefs.InvalidArgument("spec: nil")
	case s.Root == nil || s.Root.Path == "":
		return errdefs.InvalidArgument("root.path: empty")
	case s.Process == nil:
		return errdefs.InvalidArgument("process: missing")
	case len(s.Process.Args) == 0:
		return errdefs.InvalidArgument("process.args: empty")
	case s.Linux == nil:
		return errdefs.InvalidArgument("linux: missing")
	}
	if err := validateProcess(s.Process); err != nil {
		return err
	}
	if err := validateUnsupported(s); err != nil {
		return err
	}
	if err := checkCapsHeld(s.Process, s.Linux); err != nil {
		return err
	}
	if s.Linux.MountLabel != "" {
		return errdefs.InvalidArgument("linux.mountLabel: SELinux is not available on this kernel")
	}
	if s.Linux.IntelRdt != nil {
		return errdefs.Unimplemented("linux.intelRdt: not supported")
	}
	if s.Root.Readonly && !hasNamespace(s.Linux, specs.MountNamespace) {
		return errdefs.InvalidArgument("root.readonly: needs a mount namespace (linux.namespaces has none)")
	}
	if err := validateHooks(s.Hooks); err != nil {
		return err
	}
	if err := validateSysctl(s.Linux); err != nil {
		return err
	}
	// Without a UTS namespace they would be the host's names: refused, as
	// runc does, rather than silently ignored.
	if !hasNamespace(s.Linux, specs.UTSNamespace) {
		if s.Hostname != "" {
			return errdefs.InvalidArgument("hostname %q: needs a UTS namespace (linux.namespaces has none)", s.Hostname)
		}
		if s.Domainname != "" {
			return errdefs.InvalidArgument("domainname %q: needs a UTS namespace (linux.namespaces has none)", s.Domainname)
		}
	}
	for i, m := range s.Mounts {
		if m.Destination == "" {
			return errdefs.InvalidArgument("mounts[%d].destination: empty", i)
		}
		if !filepath.IsAbs(m.Destination) {
			return errdefs.InvalidArgument("mounts[%d].destination %q: not absolute", i, m.Destination)
		}
	}
	return nil
}

func hasNamespace(l *specs.Linux, t specs.LinuxNamespaceType) bool {
	for _, ns := range l.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

func validateProcess(p *specs.Process) error {
	if err := checkAppArmor(p.ApparmorProfile); err != nil {
		return err
	}
	if p.SelinuxLabel != "" {
		return errdefs.InvalidArgument("process.selinuxLabel: SELinux is not available on this kernel")
	}
	if p.Cwd != "" && !filepath.IsAbs(p.Cwd) {
		return errdefs.InvalidArgument("process.cwd %q: not absolute", p.Cwd)
	}
	if p.Capabilities != nil {
		for _, set := range [][]string{p.Capabilities.Bounding, p.Capabilities.Effective,
			p.Capabilities.Permitted, p.Capabilities.Inheritable, p.Capabilities.Ambient} {
			for _, c := range set {
				if _, ok := capByName[c]; !ok {
					return errdefs.InvalidArgument("process.capabilities: unknown capability %q", c)
				}
			}
		}
	}
	for _, rl := range p.Rlimits {
		if _, ok := rlimitByName[rl.Type]; !ok {
			return errdefs.InvalidArgument("process.rlimits: unknown type %q", rl.Type)
		}
	}
	return nil
}

// validateHooks refuses a hook whose path is not absolute (runtime-spec:
// it MUST be), which would otherwise be looked up in the runtime's PATH.
func validateHooks(h *specs.Hooks) error {
	if h == nil {
		return nil
	}
	for _, kind := range []struct {
		name  string
		hooks []specs.Hook
	}{
		{"prestart", h.Prestart}, //nolint:staticcheck // still written by older tools
		{"createRuntime", h.CreateRuntime}, {"createContainer", h.CreateContainer},
		{"startContainer", h.StartContainer}, {"poststart", h.Poststart}, {"poststop", h.Poststop},
	} {
		for i, hk := range kind.hooks {
			if !filepath.IsAbs(hk.Path) {
				return errdefs.InvalidArgument("hooks.%s[%d].path %q: not absolute", kind.name, i, hk.Path)
			}
			if hk.Timeout != nil && *hk.Timeout <= 0 {
				return errdefs.InvalidArgument("hooks.%s[%d].timeout %d: must be positive", kind.name, i, *hk.Timeout)
			}
		}
	}
	return nil
}

// ipcSysctls are the kernel.* sysctls an IPC namespace owns (fs.mqueue.*
// too).
var ipcSysctls = map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true}

// validateSysctl refuses a sysctl outside a namespace listed in the spec:
// the init writes /proc/sys, and a sysctl the kernel does not namespace,
// or whose namespace is the host's, would change the host (runc refuses
// the same).
func validateSysctl(l *specs.Linux) error {
	for k := range l.Sysctl {
		var ns specs.LinuxNamespaceType
		switch {
		case ipcSysctls[k] || strings.HasPrefix(k, "fs.mqueue."):
			ns = specs.IPCNamespace
		case strings.HasPrefix(k, "net."):
			ns = specs.NetworkNamespace
		case k == "kernel.hostname" || k == "kernel.domainname":
			ns = specs.UTSNamespace
		default:
			return errdefs.InvalidArgument("linux.sysctl %q: not in a namespace of the container's (it would change the host)", k)
		}
		if !hasNamespace(l, ns) {
			return errdefs.InvalidArgument("linux.sysctl %q: needs a %s namespace of the container's, and linux.namespaces has none", k, ns)
		}
	}
	return nil
}
