package spec

import (
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// skipDevDirs are not device trees (pts, shm, mqueue are the container's
// own mounts) or are known to hold nodes that break containers (runc#2093
// for .udev, lxd#2825 for .lxc), the list runc and containerd skip.
var skipDevDirs = map[string]bool{"pts": true, "shm": true, "fd": true, "mqueue": true,
	".lxc": true, ".lxd-mounts": true, ".udev": true}

// HostDevices lists the host's device nodes under /dev for a privileged
// container, at the same paths. /dev/console is the container's own
// (a pty when it has a terminal) and /dev/ptmx must stay the link to the
// container's devpts, so both are left out; symlinks are skipped.
func HostDevices() ([]specs.LinuxDevice, error) {
	return hostDevicesIn("/dev")
}

func hostDevicesIn(dir string) ([]specs.LinuxDevice, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list host devices %s: %w", dir, err)
	}
	var out []specs.LinuxDevice
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			if skipDevDirs[e.Name()] {
				continue
			}
			sub, err := hostDevicesIn(p)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		case e.Type()&os.ModeSymlink != 0, p == "/dev/console", p == "/dev/ptmx":
			continue
		case e.Type()&(os.ModeDevice|os.ModeCharDevice) == 0:
			continue
		}
		d, err := hostDevice(p, p)
		if err != nil {
			continue // gone while we looked (hotplug), or not a device after all
		}
		out = append(out, d)
	}
	return out, nil
}
