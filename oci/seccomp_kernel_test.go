package oci_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// Every seccomp action, argument operator and flag as a process sees it:
// the rule targets mkdir of /tmp/d (mode 0777, umask aside), so what the shell prints (or how it dies) is the kernel's verdict.
func TestSeccompActionsOpsAndFlags(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "rmdir")
	if runtime.GOARCH != "amd64" {
		t.Skip("the argument rules are written for x86_64's mkdir")
	}
	u := func(v uint) *uint { return &v }
	mkdirs := []string{"mkdir", "mkdirat"}
	rule := func(act specs.LinuxSeccompAction, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: mkdirs, Action: act, Args: args}
	}
	// glibc's mkdir on x86_64 is the mkdir syscall: the mode is argument 1.
	mode := func(op specs.LinuxSeccompOperator, v, v2 uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: 1, Op: op, Value: v, ValueTwo: v2}
	}
	tests := []struct {
		name    string
		prof    specs.LinuxSeccomp
		want    string // in the output
		code    int
		wantErr error
	}{
		{name: "SCMP_ACT_ERRNO default EPERM", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno)}}, want: "Operation not permitted", code: 1},
		{name: "SCMP_ACT_ERRNO errnoRet", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{{Names: mkdirs, Action: specs.ActErrno, ErrnoRet: u(uint(unix.EROFS))}}}, want: "Read-only file system", code: 1},
		{name: "SCMP_ACT_TRACE without a tracer is ENOSYS", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActTrace)}}, want: "Function not implemented", code: 1},
		{name: "SCMP_ACT_KILL (thread)", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActKill)}}, code: 128 + 31},
		{name: "SCMP_ACT_KILL_THREAD", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActKillThread)}}, code: 128 + 31},
		{name: "SCMP_ACT_KILL_PROCESS", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActKillProcess)}}, code: 128 + 31},
		{name: "SCMP_ACT_TRAP", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActTrap)}}, code: 128 + 31},
		{name: "SCMP_ACT_LOG allows", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActLog)}}, want: "made"},
		{name: "SCMP_ACT_ALLOW over a denying default", prof: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: u(uint(unix.ENOSYS)),
			Syscalls: []specs.LinuxSyscall{{Names: allowedSyscalls(), Action: specs.ActAllow}}}, want: "Function not implemented", code: 1},
		{name: "SCMP_ACT_NOTIFY refused", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActNotify)}}, wantErr: errdefs.ErrNotImplemented},
		{name: "unknown action refused", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule("SCMP_ACT_NOPE")}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "op SCMP_CMP_EQ matches", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpEqualTo, 0o777, 0))}}, want: "Operation not permitted", code: 1},
		{name: "op SCMP_CMP_EQ other", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpEqualTo, 0o755, 0))}}, want: "made"},
		{name: "op SCMP_CMP_NE", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpNotEqual, 0o777, 0))}}, want: "made"},
		{name: "op SCMP_CMP_LT", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpLessThan, 0o1000, 0))}}, want: "Operation not permitted", code: 1},
		{name: "op SCMP_CMP_LE", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpLessEqual, 0o776, 0))}}, want: "made"},
		{name: "op SCMP_CMP_GE", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpGreaterEqual, 0o777, 0))}}, want: "Operation not permitted", code: 1},
		{name: "op SCMP_CMP_GT", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpGreaterThan, 0o777, 0))}}, want: "made"},
		{name: "op SCMP_CMP_MASKED_EQ", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode(specs.OpMaskedEqual, 0o070, 0o070))}}, want: "Operation not permitted", code: 1},
		{name: "two conditions on one argument mean any", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno,
			mode(specs.OpEqualTo, 0o111, 0), mode(specs.OpEqualTo, 0o777, 0))}}, want: "Operation not permitted", code: 1},
		{name: "unknown op refused", prof: specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno, mode("SCMP_CMP_NOPE", 1, 0))}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "native and 32-bit architectures", prof: specs.LinuxSeccomp{Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno)}}, want: "Operation not permitted", code: 1},
		{name: "unknown architecture refused", prof: specs.LinuxSeccomp{Architectures: []specs.Arch{"SCMP_ARCH_NOPE"}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "flags log and spec_allow", prof: specs.LinuxSeccomp{Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
			Syscalls: []specs.LinuxSyscall{rule(specs.ActErrno)}}, want: "Operation not permitted", code: 1},
		{name: "unknown flag refused", prof: specs.LinuxSeccomp{Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", "grep -E '^Seccomp:' /proc/self/status; mkdir /tmp/d 2>&1 && echo made && rmdir /tmp/d")
			prof := tc.prof
			if prof.DefaultAction == "" {
				prof.DefaultAction = specs.ActAllow
			}
			spec.Linux.Seccomp = &prof
			out, st, err := e.run("sc", spec)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				e.assertClean(t, "sc")
				return
			}
			must(t, err)
			if st.ExitCode() != tc.code {
				t.Errorf("exit %d, want %d (output %q)", st.ExitCode(), tc.code, out)
			}
			if !strings.Contains(out, "Seccomp:\t2") {
				t.Errorf("no filter installed: %q", out)
			}
			if tc.want != "" && !strings.Contains(out, tc.want) {
				t.Errorf("output %q lacks %q", out, tc.want)
			}
		})
	}
}

// allowedSyscalls is what busybox's sh, grep and mkdir need, minus mkdir.
func allowedSyscalls() []string {
	return []string{"read", "write", "open", "openat", "close", "fstat", "newfstatat", "stat", "lstat", "mmap", "munmap",
		"mprotect", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "access", "execve", "exit", "exit_group",
		"wait4", "clone", "clone3", "fork", "vfork", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "fcntl",
		"dup2", "dup3", "pipe", "pipe2", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "getrandom",
		"uname", "getcwd", "chdir", "lseek", "pread64", "readlink", "sysinfo", "umask", "statx", "getdents64", "futex",
		"setpgid", "getpgrp", "getpgid", "faccessat", "faccessat2", "poll", "ppoll", "select", "pselect6", "kill", "tgkill",
		"capget", "capset", "prctl", "setresuid", "setresgid", "setgroups", "seccomp", "sigaltstack", "nanosleep",
		"clock_nanosleep", "gettid", "sched_getaffinity", "madvise", "close_range", "getrlimit", "setitimer", "alarm", "rmdir"}
}
