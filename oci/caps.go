package oci

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

var capByName = map[string]int{}

func init() {
	names := []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
		"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
		"NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
		"SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
		"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE",
		"MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
		"CHECKPOINT_RESTORE"}
	for i, n := range names {
		capByName["CAP_"+n] = i
	}
}

var rlimitByName = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 40
	}
	return n
}

// capMask turns names into a 64-bit mask, skipping capabilities this kernel
// does not know (a newer spec on an older kernel, as runc does).
func capMask(names []string, last int) uint64 {
	var m uint64
	for _, n := range names {
		if c, ok := capByName[n]; ok && c <= last {
			m |= 1 << uint(c)
		}
	}
	return m
}

// dropBounding drops every capability outside the bounding set. It must run
// before the switch to the user's uid, while we still hold CAP_SETPCAP.
func dropBounding(c *specs.LinuxCapabilities, last int) error {
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	keep := capMask(c.Bounding, last)
	for i := 0; i <= last; i++ {
		if keep&(1<<uint(i)) == 0 {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil {
				return fmt.Errorf("drop bounding capability %d: %w", i, err)
			}
		}
	}
	return nil
}

// applyCaps sets the effective, permitted, inheritable and ambient sets of
// the calling thread, which is the thread that execs.
func applyCaps(c *specs.LinuxCapabilities, last int) error {
	if c == nil {
		c = &specs.LinuxCapabilities{}
	}
	eff, perm, inh := capMask(c.Effective, last), capMask(c.Permitted, last), capMask(c.Inheritable, last)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(eff), Permitted: uint32(perm), Inheritable: uint32(inh)},
		{Effective: uint32(eff >> 32), Permitted: uint32(perm >> 32), Inheritable: uint32(inh >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The kernel only raises an ambient capability that is permitted and
	// inheritable; specs (runc's default among them) often list others, which
	// runc skips with a warning. So do we, silently.
	amb := capMask(c.Ambient, last) & perm & inh
	for i := 0; i <= last; i++ {
		if amb&(1<<uint(i)) != 0 {
			if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
				return fmt.Errorf("raise ambient capability %d: %w", i, err)
			}
		}
	}
	return nil
}

// heldCaps is the runtime's own permitted set: without a new user namespace
// the init can set no capability outside it.
func heldCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read own capabilities: %w", err)
	}
	return uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32, nil
}

// checkCapsHeld refuses, at create, a capability the kernel would refuse
// the init after start: one in process.capabilities' effective, permitted
// or inheritable set that the runtime itself lacks (a host whose bounding
// set drops CAP_SYS_RESOURCE, a rootless or kind node). A user namespace
// (new or joined) brings its own full set, so it is not checked there. The
// bounding set may list what we lack: dropping is all it does.
func checkCapsHeld(p *specs.Process, l *specs.Linux) error {
	if p == nil || p.Capabilities == nil || (l != nil && hasNamespace(l, specs.UserNamespace)) {
		return nil
	}
	held, err := heldCaps()
	if err != nil {
		return err
	}
	last := lastCap()
	c := p.Capabilities
	for _, set := range []struct {
		name  string
		names []string
	}{{"effective", c.Effective}, {"permitted", c.Permitted}, {"inheritable", c.Inheritable}} {
		for _, n := range set.names {
			if m := capMask([]string{n}, last); m&^held != 0 {
				return errdefs.New(errdefs.ErrPermissionDenied,
					"process.capabilities.%s: %s is not in the runtime's own capability set", set.name, n)
			}
		}
	}
	return nil
}
