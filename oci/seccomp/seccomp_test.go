package seccomp

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
)

func TestCompile(t *testing.T) {
	tests := []struct {
		name  string
		prof  specs.LinuxSeccomp
		class error // nil: compiles
		flags uint
	}{
		{"errno with arg", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"personality"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpNotEqual}, {Index: 0, Value: 0xff, Op: specs.OpMaskedEqual, ValueTwo: 8}}}}}, nil, 0},
		{"flags", specs.LinuxSeccomp{DefaultAction: specs.ActLog, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}}, nil, FlagLog | FlagSpecAllow},
		{"unknown syscall skipped", specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"no_such_syscall"}, Action: specs.ActErrno}}}, nil, 0},
		{"notify", specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, errdefs.ErrNotImplemented, 0},
		{"bad arch", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, errdefs.ErrInvalidArgument, 0},
		{"bad action", specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}, errdefs.ErrInvalidArgument, 0},
		{"bad op", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"},
			Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_ALMOST"}}}}}, errdefs.ErrInvalidArgument, 0},
		{"bad flag", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_X"}}, errdefs.ErrInvalidArgument, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bpf, flags, err := Compile(&tc.prof)
			if tc.class != nil {
				if !errors.Is(err, tc.class) {
					t.Fatalf("err %v, want %v", err, tc.class)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(bpf) == 0 || len(bpf)%8 != 0 || flags != tc.flags {
				t.Fatalf("program of %d bytes, flags %x (want %x)", len(bpf), flags, tc.flags)
			}
		})
	}
}
