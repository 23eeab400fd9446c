package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads a compiled program into the calling thread. It needs
// no_new_privs or CAP_SYS_ADMIN; it is the init's last step before exec.
func Install(bpf []byte, flags uint) error {
	if len(bpf) == 0 {
		return nil
	}
	if len(bpf)%8 != 0 {
		return fmt.Errorf("install seccomp: program of %d bytes", len(bpf))
	}
	prog := unix.SockFprog{Len: uint16(len(bpf) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&bpf[0]))}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, 1 /* SECCOMP_SET_MODE_FILTER */, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("install seccomp: %w", errno)
	}
	return nil
}
