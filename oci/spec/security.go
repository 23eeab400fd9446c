package spec

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// applySecurity maps the container's security context onto the spec:
// capabilities, masked and read-only paths, no_new_privs, the LSMs, seccomp
// and, for a privileged container, everything privileged means. It runs
// after setUser (capabilities depend on the uid) and after the mounts are
// in place (privileged makes /sys and the cgroupfs writable).
func applySecurity(s *specs.Spec, in Input) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	if err := checkLSMs(s, in); err != nil {
		return err
	}
	if err := CheckPodUserNS(in.Sandbox); err != nil {
		return err
	}
	s.Process.NoNewPrivileges = sc.GetNoNewPrivs()
	if sc.GetPrivileged() {
		if !in.Sandbox.GetLinux().GetSecurityContext().GetPrivileged() {
			return errdefs.InvalidArgument("security_context.privileged: the pod sandbox is not privileged, so no container in it may be")
		}
		return applyPrivileged(s)
	}
	caps, err := capabilities(in.DefaultCapabilities, sc.GetCapabilities())
	if err != nil {
		return err
	}
	if err := checkHeld(caps); err != nil {
		return err
	}
	s.Process.Capabilities = capSets(caps, s.Process.User.UID)
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = procPaths(in)
	prof, err := seccompProfile(in, caps)
	if err != nil {
		return err
	}
	s.Linux.Seccomp = prof
	return nil
}

// capSets fills the sets the way Docker and CRI-O do: the bounding set is
// the container's ceiling; a non-root user starts with nothing effective or
// permitted (the kernel would clear them at its execve anyway, but only
// after the exec permission check, which CAP_DAC_OVERRIDE would bypass).
// Inheritable and ambient stay empty (CVE-2022-24769).
func capSets(caps []string, uid uint32) *specs.LinuxCapabilities {
	c := &specs.LinuxCapabilities{Bounding: caps}
	if uid == 0 {
		c.Effective, c.Permitted = slices.Clone(caps), slices.Clone(caps)
	}
	return c
}

// capabilities applies add/drop to the default set in containerd's order:
// ALL added, then ALL dropped, then each named add, then each named drop.
// So drop ALL + add X gives just X, and add ALL + drop X gives all but X.
func capabilities(defaults []string, c *runtime.Capability) ([]string, error) {
	if defaults == nil {
		defaults = DefaultCapabilities()
	}
	set := map[string]bool{}
	for _, x := range defaults {
		set[x] = true
	}
	has := func(l []string) bool {
		return slices.ContainsFunc(l, func(s string) bool { return strings.EqualFold(s, "ALL") })
	}
	if has(c.GetAddCapabilities()) {
		for _, x := range AllCapabilities() {
			set[x] = true
		}
	}
	if has(c.GetDropCapabilities()) {
		clear(set)
	}
	for i, a := range c.GetAddCapabilities() {
		if strings.EqualFold(a, "ALL") {
			continue
		}
		n, err := capName(a, "add_capabilities", i)
		if err != nil {
			return nil, err
		}
		set[n] = true
	}
	for i, d := range c.GetDropCapabilities() {
		if strings.EqualFold(d, "ALL") {
			continue
		}
		n, err := capName(d, "drop_capabilities", i)
		if err != nil {
			return nil, err
		}
		delete(set, n)
	}
	return sortedKeys(set), nil
}

// capName normalises "net_admin" or "CAP_NET_ADMIN" and refuses names no
// kernel knows: a typo must not silently grant or keep nothing.
func capName(c, field string, i int) (string, error) {
	n := strings.ToUpper(c)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if !slices.Contains(knownCapabilities, n) {
		return "", errdefs.InvalidArgument("security_context.capabilities.%s[%d]: unknown capability %q", field, i, c)
	}
	return n, nil
}

// ValidateCapabilities checks a configured default set (config/).
func ValidateCapabilities(caps []string) error {
	for i, c := range caps {
		if !slices.Contains(knownCapabilities, c) {
			return errdefs.InvalidArgument("capability [%d] %q: not a CAP_ name this runtime knows", i, c)
		}
	}
	return nil
}

// knownCapabilities in kernel order (capability.h), index = number.
var knownCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// AllCapabilities are the capabilities cri-server itself holds (its
// permitted set), which is what "ALL" and privileged can grant: containerd
// uses the same. A kind node or this CI's root lacks CAP_SYS_RESOURCE, and
// asking the kernel for a capability we lack fails the container's start.
func AllCapabilities() []string {
	held := heldCapabilities()
	var out []string
	for i, n := range knownCapabilities {
		if held&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// heldCapabilities is CapPrm of this process, read once. Without it (no
// /proc?) every capability up to cap_last_cap is assumed.
var heldCapabilities = sync.OnceValue(func() uint64 {
	all := uint64(1)<<len(knownCapabilities) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n < len(knownCapabilities) {
			all = uint64(1)<<(n+1) - 1
		}
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return all
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapPrm:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
				return m & all
			}
		}
	}
	return all
})

// checkHeld refuses a capability cri-server cannot grant, at create rather
// than as a capset EPERM when the container starts.
func checkHeld(caps []string) error {
	held := heldCapabilities()
	for _, c := range caps {
		if i := slices.Index(knownCapabilities, c); i >= 0 && held&(1<<i) == 0 {
			return errdefs.FailedPrecondition("capability %s: cri-server does not hold it on this node, so it cannot grant it", c)
		}
	}
	return nil
}

// procPaths picks the masked and read-only paths. The kubelet sends its
// default lists for procMount Default and empty lists for Unmasked; protobuf
// cannot tell an empty list from an absent one, so empty is read as
// Unmasked only where Kubernetes allows Unmasked at all (a pod with its own
// user namespace). Anywhere else an empty list gets the defaults, so that a
// client that never heard of procMount does not get an unmasked /proc.
func procPaths(in Input) (masked, readonly []string) {
	sc := in.Config.GetLinux().GetSecurityContext()
	masked, readonly = sc.GetMaskedPaths(), sc.GetReadonlyPaths()
	if len(masked) > 0 || len(readonly) > 0 || podUserNS(in.Sandbox) {
		return slices.Clone(masked), slices.Clone(readonly)
	}
	return MaskedPaths(), ReadonlyPaths()
}

// applyPrivileged: every capability, no seccomp, no masked or read-only
// paths, writable sysfs and cgroupfs, every host device, and a device
// cgroup that allows them all (the CRI's list of what privileged implies).
func applyPrivileged(s *specs.Spec) error {
	s.Process.Capabilities = capSets(AllCapabilities(), s.Process.User.UID)
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths, s.Linux.Seccomp = nil, nil, nil
	for i := range s.Mounts {
		m := &s.Mounts[i]
		if m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2" {
			m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
			m.Options = append(m.Options, "rw")
		}
	}
	devs, err := HostDevices()
	if err != nil {
		return err
	}
	s.Linux.Devices = mergeDevices(devs, s.Linux.Devices)
	s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	return nil
}

// mergeDevices keeps the kubelet's devices (added earlier) over a host
// device at the same container path.
func mergeDevices(host, asked []specs.LinuxDevice) []specs.LinuxDevice {
	out := slices.DeleteFunc(host, func(h specs.LinuxDevice) bool {
		return slices.ContainsFunc(asked, func(a specs.LinuxDevice) bool { return a.Path == h.Path })
	})
	return append(out, asked...)
}
