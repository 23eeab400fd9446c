package oci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"text/template"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// AppArmor, as runc applies it: the init asks the kernel to switch the
// profile at its exec of the user's process (the "exec" attribute), so the
// profile confines the container from its first instruction and never the
// init. The profile must be loaded beforehand; the runtime's default one is
// loaded on first use with apparmor_parser, as containerd loads its own.

// DefaultAppArmorProfile is the runtime's default profile (RuntimeDefault),
// containerd's "cri-containerd.apparmor.d" under our name.
const DefaultAppArmorProfile = "cri-server-default"

// AppArmorEnabled says whether the kernel has AppArmor enabled (runc's and
// containerd's probe).
func AppArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(b) > 0 && b[0] == 'Y'
}

// appArmorAttr picks the file the init writes: the AppArmor-specific one
// of LSM stacking (Linux 5.8+), else the shared one older kernels have.
// The thread's, not the process's: the attribute is per task, and the
// thread that writes it is the one that execs (the init is locked to it),
// while /proc/self would name the thread group leader.
func appArmorAttr(exists func(string) bool) string {
	const stacked, legacy = "/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"
	if exists(stacked) {
		return stacked
	}
	return legacy
}

// applyAppArmor is the init's side: "exec <profile>" just before the exec.
func applyAppArmor(profile string) error {
	if profile == "" {
		return nil
	}
	p := appArmorAttr(func(p string) bool { return unix.Access(p, unix.F_OK) == nil })
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("exec "+profile)); err != nil {
		return fmt.Errorf("set AppArmor profile %s: %w", profile, err)
	}
	return nil
}

// checkAppArmor runs in the parent before anything is created: a profile on
// a node without AppArmor is refused (never silently dropped), the default
// profile is loaded if it is not, any other profile must be loaded.
func checkAppArmor(profile string) error {
	if profile == "" {
		return nil
	}
	if !AppArmorEnabled() {
		return errdefs.InvalidArgument("process.apparmorProfile %q: AppArmor is not enabled on this node", profile)
	}
	loaded, err := appArmorLoaded(profile)
	if err != nil {
		return err
	}
	switch {
	case loaded:
		return nil
	case profile == DefaultAppArmorProfile:
		return loadDefaultAppArmor()
	}
	return errdefs.InvalidArgument("process.apparmorProfile %q: no such profile is loaded", profile)
}

// appArmorLoaded reads the kernel's list of loaded profiles ("name (mode)").
func appArmorLoaded(name string) (bool, error) {
	f, err := os.Open("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return false, fmt.Errorf("list AppArmor profiles: %w", err)
	}
	defer f.Close()
	return profileListed(f, name)
}

func profileListed(f interface{ Read([]byte) (int, error) }, name string) (bool, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n, _, ok := strings.Cut(sc.Text(), " ("); ok && n == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

var loadMu sync.Mutex

// loadDefaultAppArmor loads the default profile with apparmor_parser (-K:
// no cache, -r: replace one loaded meanwhile). Without the parser a
// RuntimeDefault container cannot be confined: a clear error, not an
// unconfined container.
func loadDefaultAppArmor() error {
	loadMu.Lock()
	defer loadMu.Unlock()
	if ok, err := appArmorLoaded(DefaultAppArmorProfile); err == nil && ok {
		return nil
	}
	parser, err := findParser(exec.LookPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(parser, "-Kr")
	cmd.Stdin = strings.NewReader(DefaultAppArmorProfileText(DefaultAppArmorProfile))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load AppArmor profile %s: %w: %s", DefaultAppArmorProfile, err, bytes.TrimSpace(out))
	}
	return nil
}

// findParser looks for apparmor_parser in PATH, then where distributions
// put it (containerd looks at /sbin only).
func findParser(look func(string) (string, error)) (string, error) {
	if p, err := look("apparmor_parser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"} {
		if _, err := look(p); err == nil {
			return p, nil
		}
	}
	return "", errdefs.FailedPrecondition("AppArmor profile %s is not loaded and apparmor_parser is not installed to load it: %v",
		DefaultAppArmorProfile, errors.New("install apparmor (apparmor_parser) or use Unconfined"))
}

// DefaultAppArmorProfileText is the default profile: Docker's and
// containerd's rules (everything a container normally does; no mount, no
// writes to the kernel's knobs in /proc and /sys, signals and ptrace only
// among the profile's processes and from the unconfined host).
func DefaultAppArmorProfileText(name string) string {
	var b strings.Builder
	_ = profileTmpl().Execute(&b, struct{ Name string }{name})
	return b.String()
}

// profileTmpl is parsed on first use: at package init, every container
// init and command line would pay its parse (~60 µs, 164 allocations) for a
// profile only the daemon writes, and only on AppArmor kernels.
var profileTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("apparmor").Parse(profileText))
})

const profileText = `#include <tunables/global>

profile {{.Name}} flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,
  # Host processes (unconfined) may signal the container's; the
  # container's may signal each other.
  signal (receive) peer=unconfined,
  signal (send,receive) peer={{.Name}},

  # /proc: no writes to its top-level files, nor outside /proc/<pid> and
  # /proc/sys/kernel/shm*; never sysrq-trigger or kcore.
  deny @{PROC}/* w,
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,

  deny mount,

  # /sys: writable only under /sys/fs/cgroup; never firmware, powercap
  # or the LSMs' own files.
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/devices/virtual/powercap/** rwklx,
  deny /sys/kernel/security/** rwklx,

  # ps inside the container reads its own processes.
  ptrace (trace,read,tracedby,readby) peer={{.Name}},
}
`
