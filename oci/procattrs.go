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
	if _, err := schedAttr(s.Process.Scheduler); err != nil {
		return err
	}
	return validateIdmapMounts(s)
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: unix.SCHED_NORMAL, specs.SchedFIFO: unix.SCHED_FIFO, specs.SchedRR: unix.SCHED_RR,
	specs.SchedBatch: unix.SCHED_BATCH, specs.SchedIdle: unix.SCHED_IDLE, specs.SchedDeadline: unix.SCHED_DEADLINE,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: unix.SCHED_FLAG_RESET_ON_FORK, specs.SchedFlagReclaim: unix.SCHED_FLAG_RECLAIM,
	specs.SchedFlagDLOverrun: unix.SCHED_FLAG_DL_OVERRUN, specs.SchedFlagKeepPolicy: unix.SCHED_FLAG_KEEP_POLICY,
	specs.SchedFlagKeepParams: unix.SCHED_FLAG_KEEP_PARAMS, specs.SchedFlagUtilClampMin: unix.SCHED_FLAG_UTIL_CLAMP_MIN,
	specs.SchedFlagUtilClampMax: unix.SCHED_FLAG_UTIL_CLAMP_MAX,
}

// schedAttr turns process.scheduler into sched_setattr's argument; nil
// for no scheduler.
func schedAttr(s *specs.Scheduler) (*unix.SchedAttr, error) {
	if s == nil {
		return nil, nil
	}
	pol, ok := schedPolicies[s.Policy]
	if !ok {
		return nil, errdefs.InvalidArgument("process.scheduler.policy: unknown %q", s.Policy)
	}
	a := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: pol, Nice: s.Nice, Priority: uint32(s.Priority),
		Runtime: s.Runtime, Deadline: s.Deadline, Period: s.Period}
	for _, f := range s.Flags {
		fl, ok := schedFlags[f]
		if !ok {
			return nil, errdefs.InvalidArgument("process.scheduler.flags: unknown %q", f)
		}
		a.Flags |= fl
	}
	if s.Nice < -20 || s.Nice > 19 {
		return nil, errdefs.InvalidArgument("process.scheduler.nice %d: must be -20..19", s.Nice)
	}
	if s.Priority < 0 {
		return nil, errdefs.InvalidArgument("process.scheduler.priority %d: negative", s.Priority)
	}
	return a, nil
}

// setScheduler applies process.scheduler to the calling thread, which
// execs the process: it inherits the policy. The kernel decides what the
// caller may ask (a realtime policy in a cgroup without realtime budget is
// refused): EPERM is a privilege error naming the field, EINVAL a bad
// combination of policy and parameters.
func setScheduler(s *specs.Scheduler) error {
	a, err := schedAttr(s)
	if a == nil || err != nil {
		return err
	}
	if err := unix.SchedSetAttr(0, a, 0); err != nil {
		switch err {
		case unix.EPERM, unix.EBUSY:
			return &classErr{class: "privilege", field: "process.scheduler", req: int64(a.Priority), err: err}
		case unix.EINVAL:
			return invalidf("process.scheduler %s: %v", s.Policy, err)
		}
		return fmt.Errorf("set scheduler: %w", err)
	}
	return nil
}
