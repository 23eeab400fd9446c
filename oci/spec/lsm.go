package spec

import (
	"os"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// The executor applies neither AppArmor nor SELinux. What the kubelet asks
// for is then handled as containerd handles it on a node without the LSM:
// RuntimeDefault and Unconfined AppArmor are no-ops (there is nothing to
// confine with), a named AppArmor profile is an error (the pod asked for a
// confinement it would not get), and SELinux options are ignored when the
// kernel has no SELinux, refused when it has (a label we cannot apply).

// LSMs reports which Linux security modules this node has enabled.
type LSMs struct{ AppArmor, SELinux bool }

// HostLSMs probes the kernel the way runc and containerd do.
func HostLSMs() LSMs {
	var l LSMs
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		l.AppArmor = true
	}
	if _, err := os.Stat("/sys/fs/selinux/enforce"); err == nil {
		l.SELinux = true
	}
	return l
}

func checkLSMs(in Input) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	if p := sc.GetApparmor(); p.GetProfileType() == runtime.SecurityProfile_Localhost {
		return errdefs.InvalidArgument("security_context.apparmor: profile %q asked for, but cri-server does not apply AppArmor profiles on this node", p.GetLocalhostRef())
	}
	if p := sc.GetApparmorProfile(); strings.HasPrefix(p, profileLocalhost) {
		return errdefs.InvalidArgument("security_context.apparmor_profile: profile %q asked for, but cri-server does not apply AppArmor profiles on this node", p)
	}
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
