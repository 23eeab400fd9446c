package oci

import (
	"path/filepath"

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
