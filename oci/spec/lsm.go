package spec

import (
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// AppArmor as containerd 2.x maps it. On a node without AppArmor,
// RuntimeDefault and Unconfined are no-ops (there is nothing to confine
// with; the kubelet sends RuntimeDefault by default) and a Localhost
// profile is an error (the pod asked for a confinement it would not get).
// On a node with AppArmor: RuntimeDefault, or no profile for an
// unprivileged container, is the runtime's default profile (which the
// executor loads on first use), Localhost is the named profile, Unconfined
// and a privileged container without a profile get none. The deprecated
// apparmor_profile string ("runtime/default", "unconfined",
// "localhost/<name>") is read when the field is absent. SELinux options
// are ignored when the kernel has no SELinux, refused when it has (a label
// we cannot apply).

// LSMs reports which Linux security modules this node has enabled.
type LSMs struct{ AppArmor, SELinux bool }

// HostLSMs probes the kernel the way runc and containerd do.
func HostLSMs() LSMs {
	var l LSMs
	l.AppArmor = oci.AppArmorEnabled()
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		l.SELinux = true
	}
	return l
}

func checkLSMs(s *specs.Spec, in Input) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	prof, err := appArmorProfile(sc, in.LSMs.AppArmor)
	if err != nil {
		return err
	}
	s.Process.ApparmorProfile = prof
	if o := sc.GetSelinuxOptions(); o != nil && (o.User != "" || o.Role != "" || o.Type != "" || o.Level != "") {
		if in.LSMs.SELinux {
			return errdefs.InvalidArgument("security_context.selinux_options: SELinux is enabled on this node but cri-server cannot apply labels")
		}
		if in.Log != nil {
			in.Log.Debug("SELinux options ignored: the node has no SELinux", "type", o.Type, "level", o.Level)
		}
	}
	return nil
}

// appArmorProfile resolves the container's AppArmor field to the profile
// name the executor applies ("" for none).
func appArmorProfile(sc *runtime.LinuxContainerSecurityContext, enabled bool) (string, error) {
	typ, name, field, err := appArmorRequest(sc)
	if err != nil {
		return "", err
	}
	if !enabled {
		if typ == runtime.SecurityProfile_Localhost {
			return "", errdefs.InvalidArgument("%s: profile %q asked for, but AppArmor is not enabled on this node", field, name)
		}
		return "", nil
	}
	switch {
	case typ == runtime.SecurityProfile_Localhost:
		return name, nil
	case typ == runtime.SecurityProfile_Unconfined:
		return "", nil
	case field == "" && sc.GetPrivileged():
		// Nothing asked for: the default, except for privileged
		// containers (kubernetes#51746).
		return "", nil
	}
	return oci.DefaultAppArmorProfile, nil
}

// appArmorRequest reads the field or, absent, the deprecated string; field
// is "" when neither asks for anything.
func appArmorRequest(sc *runtime.LinuxContainerSecurityContext) (typ runtime.SecurityProfile_ProfileType, name, field string, err error) {
	if p := sc.GetApparmor(); p != nil {
		field = "security_context.apparmor"
		if p.GetProfileType() == runtime.SecurityProfile_Localhost {
			name = strings.TrimPrefix(p.GetLocalhostRef(), profileLocalhost)
			if name == "" {
				return 0, "", "", errdefs.InvalidArgument("%s: Localhost without a profile name", field)
			}
		}
		return p.GetProfileType(), name, field, nil
	}
	switch p := sc.GetApparmorProfile(); {
	case p == "":
		return runtime.SecurityProfile_RuntimeDefault, "", "", nil
	case p == profileRuntimeDefault:
		return runtime.SecurityProfile_RuntimeDefault, "", "security_context.apparmor_profile", nil
	case p == profileUnconfined:
		return runtime.SecurityProfile_Unconfined, "", "security_context.apparmor_profile", nil
	case strings.HasPrefix(p, profileLocalhost) && len(p) > len(profileLocalhost):
		return runtime.SecurityProfile_Localhost, strings.TrimPrefix(p, profileLocalhost), "security_context.apparmor_profile", nil
	}
	return 0, "", "", errdefs.InvalidArgument("security_context.apparmor_profile %q: not runtime/default, unconfined or localhost/<name>", sc.GetApparmorProfile())
}
