// Package seccomp compiles a runtime-spec seccomp profile to a BPF program
// with libseccomp, in the parent, so the container init only installs it.
package seccomp

import (
	"fmt"
	"io"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// Flags of seccomp(2) SECCOMP_SET_MODE_FILTER.
const (
	FlagLog          = 1 << 1
	FlagSpecAllow    = 1 << 2
	FlagWaitKillable = 1 << 5
)

var archNames = map[specs.Arch]string{
	specs.ArchX86: "x86", specs.ArchX86_64: "amd64", specs.ArchX32: "x32", specs.ArchARM: "arm",
	specs.ArchAARCH64: "arm64", specs.ArchMIPS: "mips", specs.ArchMIPS64: "mips64",
	specs.ArchMIPS64N32: "mips64n32", specs.ArchMIPSEL: "mipsel", specs.ArchMIPSEL64: "mipsel64",
	specs.ArchMIPSEL64N32: "mipsel64n32", specs.ArchPPC: "ppc", specs.ArchPPC64: "ppc64",
	specs.ArchPPC64LE: "ppc64le", specs.ArchS390: "s390", specs.ArchS390X: "s390x",
	specs.ArchRISCV64: "riscv64",
}

var opNames = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual: libseccomp.CompareNotEqual, specs.OpLessThan: libseccomp.CompareLess,
	specs.OpLessEqual: libseccomp.CompareLessOrEqual, specs.OpEqualTo: libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual, specs.OpGreaterThan: libseccomp.CompareGreater,
	specs.OpMaskedEqual: libseccomp.CompareMaskedEqual,
}

func action(a specs.LinuxSeccompAction, errnoRet *uint, field string) (libseccomp.ScmpAction, error) {
	errno := int16(unix.EPERM)
	if errnoRet != nil {
		errno = int16(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(errno), nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(errno), nil
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActNotify:
		return 0, errdefs.Unimplemented("%s: SCMP_ACT_NOTIFY is not supported", field)
	}
	return 0, errdefs.InvalidArgument("%s: unknown action %q", field, a)
}

// Compile returns the BPF program (struct sock_filter array) of a profile and
// the seccomp(2) flags to install it with.
func Compile(s *specs.LinuxSeccomp) ([]byte, uint, error) {
	def, err := action(s.DefaultAction, s.DefaultErrnoRet, "linux.seccomp.defaultAction")
	if err != nil {
		return nil, 0, err
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, 0, fmt.Errorf("create seccomp filter: %w", err)
	}
	defer f.Release()
	// The init sets no_new_privs itself when the spec asks; the filter must
	// not force it.
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, 0, fmt.Errorf("seccomp filter: %w", err)
	}
	for i, a := range s.Architectures {
		n, ok := archNames[a]
		if !ok {
			return nil, 0, errdefs.InvalidArgument("linux.seccomp.architectures[%d]: unknown %q", i, a)
		}
		arch, err := libseccomp.GetArchFromString(n)
		if err != nil {
			return nil, 0, errdefs.InvalidArgument("linux.seccomp.architectures[%d]: %v", i, err)
		}
		if err := f.AddArch(arch); err != nil {
			return nil, 0, fmt.Errorf("add seccomp arch %s: %w", a, err)
		}
	}
	var flags uint
	for i, fl := range s.Flags {
		switch fl {
		case specs.LinuxSeccompFlagLog:
			flags |= FlagLog
		case specs.LinuxSeccompFlagSpecAllow:
			flags |= FlagSpecAllow
		case specs.LinuxSeccompFlagWaitKillableRecv:
			flags |= FlagWaitKillable
		default:
			return nil, 0, errdefs.InvalidArgument("linux.seccomp.flags[%d]: unknown %q", i, fl)
		}
	}
	for i, sc := range s.Syscalls {
		if err := addRule(f, def, sc, fmt.Sprintf("linux.seccomp.syscalls[%d]", i)); err != nil {
			return nil, 0, err
		}
	}
	return export(f, flags)
}

func addRule(f *libseccomp.ScmpFilter, def libseccomp.ScmpAction, sc specs.LinuxSyscall, field string) error {
	act, err := action(sc.Action, sc.ErrnoRet, field+".action")
	if err != nil {
		return err
	}
	if act == def {
		return nil // libseccomp refuses rules equal to the default; they are no-ops
	}
	var conds []libseccomp.ScmpCondition
	for j, a := range sc.Args {
		op, ok := opNames[a.Op]
		if !ok {
			return errdefs.InvalidArgument("%s.args[%d].op: unknown %q", field, j, a.Op)
		}
		var c libseccomp.ScmpCondition
		if a.Op == specs.OpMaskedEqual {
			c, err = libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		} else {
			c, err = libseccomp.MakeCondition(a.Index, op, a.Value)
		}
		if err != nil {
			return errdefs.InvalidArgument("%s.args[%d]: %v", field, j, err)
		}
		conds = append(conds, c)
	}
	for _, name := range sc.Names {
		nr, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			continue // unknown to this libseccomp/arch: skipped, as runc does
		}
		if err := addConds(f, nr, act, conds); err != nil {
			return fmt.Errorf("%s: add rule for %s: %w", field, name, err)
		}
	}
	return nil
}

// addConds adds a rule; libseccomp refuses two conditions on one argument in
// a rule, which the spec allows and means "any of", so those become one rule
// per condition (runc's reading).
func addConds(f *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition) error {
	if len(conds) == 0 {
		return f.AddRule(nr, act)
	}
	seen := map[uint]bool{}
	dup := false
	for _, c := range conds {
		if seen[c.Argument] {
			dup = true
		}
		seen[c.Argument] = true
	}
	if !dup {
		return f.AddRuleConditional(nr, act, conds)
	}
	for _, c := range conds {
		if err := f.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
			return err
		}
	}
	return nil
}

func export(f *libseccomp.ScmpFilter, flags uint) ([]byte, uint, error) {
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, 0, fmt.Errorf("export seccomp: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, 0, fmt.Errorf("export seccomp: %w", err)
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("export seccomp: %w", err)
	}
	b, err := io.ReadAll(mf)
	if err != nil {
		return nil, 0, fmt.Errorf("export seccomp: %w", err)
	}
	return b, flags, nil
}

// ArchName is exposed for `oci features`.
func ArchName(a specs.Arch) string { return strings.ToLower(archNames[a]) }
