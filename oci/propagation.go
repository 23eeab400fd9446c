package oci

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// prepareRootPropagation sets the propagation of the container's fresh
// mount namespace before anything is mounted, as runc's prepareRoot does.
// By default everything becomes rslave: host mounts still reach the
// container, nothing the container mounts reaches the host. A spec that asks
// for rshared (CRI Bidirectional volumes) keeps the namespace's mounts in
// the host's peer groups so that mounts under such a volume reach the host;
// making them rslave first and rshared later would put them in new peer
// groups and cut that path.
func prepareRootPropagation(rootfs, rootProp string) error {
	flag := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if rootProp != "" {
		f, ok := propOpts[rootProp]
		if !ok {
			return invalidf("linux.rootfsPropagation: unknown %q", rootProp)
		}
		flag = f
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return fmt.Errorf("set propagation of /: %w", err)
	}
	return rootfsParentMountPrivate(rootfs)
}

// rootfsParentMountPrivate makes the mount holding rootfs private in this
// namespace (only that mount, not its children), so that the bind of the
// rootfs onto itself and every mount under it stay in the container: with a
// shared root they would otherwise appear on the host under the rootfs.
// pivot_root also refuses a new root whose parent is shared.
func rootfsParentMountPrivate(path string) error {
	path = filepath.Clean(path)
	for {
		err := unix.Mount("", path, "", unix.MS_PRIVATE, "")
		if err == nil {
			return nil
		}
		// EINVAL: not a mount point; the mount holding it is further up.
		if !errors.Is(err, unix.EINVAL) || path == "/" {
			return fmt.Errorf("make parent mount of rootfs %s private: %w", path, err)
		}
		path = filepath.Dir(path)
	}
}
