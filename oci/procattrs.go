package oci

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// setPersonality applies linux.personality (execution domain) to the init
// before exec; the exec'd process inherits it.
func setPersonality(p *specs.LinuxPersonality) error {
	if p == nil {
		return nil
	}
	var dom uintptr
	switch p.Domain {
	case specs.PerLinux:
		dom = 0x0000 // PER_LINUX
	case specs.PerLinux32:
		dom = 0x0008 // PER_LINUX32
	default:
		return invalidf("linux.personality.domain: unknown %q", p.Domain)
	}
	if len(p.Flags) > 0 {
		return &classErr{class: "notimpl", err: fmt.Errorf("linux.personality.flags: not supported")}
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, dom, 0, 0); errno != 0 {
		return fmt.Errorf("set personality: %w", errno)
	}
	return nil
}

var ioprioClass = map[specs.IOPriorityClass]uintptr{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

// setIOPriority applies process.ioPriority to the calling process.
func setIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	class, ok := ioprioClass[p.Class]
	if !ok {
		return invalidf("process.ioPriority.class: unknown %q", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return invalidf("process.ioPriority.priority %d: must be 0-7", p.Priority)
	}
	const ioprioWhoProcess = 1
	if _, _, errno := unix.RawSyscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, class<<13|uintptr(p.Priority)); errno != 0 {
		if errno == unix.EPERM {
			return &classErr{class: "privilege", field: "process.ioPriority", req: int64(p.Priority), err: errno}
		}
		return fmt.Errorf("set io priority: %w", errno)
	}
	return nil
}

// validateUnsupported refuses spec fields we do not implement yet, rather
// than ignoring them.
func validateUnsupported(s *specs.Spec) error {
	if s.Process.Scheduler != nil {
		return errdefs.Unimplemented("process.scheduler: not supported")
	}
	return validateIdmapMounts(s)
}
