package oci

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// IdmapOverlay remounts the overlay at target (a container's rootfs, not
// yet in use) so that the image's files appear owned through the user
// namespace at usernsPath: each lower layer is an idmapped mount (on this
// kernel, 6.18, overlayfs itself cannot be idmapped: mount_setattr on an
// overlay mount is EINVAL, but its layers can, given to it by fd with
// "lowerdir+"), the upper dir stays plain and its root is given to the
// namespace's root (rootUID/rootGID on the host), so that what the
// container writes is owned on disk by its own host ids. containerd 2.x
// does the same for its overlay snapshots. A layer on a filesystem that
// cannot be idmapped is a FailedPrecondition, never a rootfs left with
// the host's ids.
func IdmapOverlay(target, usernsPath string, rootUID, rootGID int) error {
	lowers, upper, work, err := overlayLayers(target)
	if err != nil {
		return err
	}
	ns, err := os.Open(usernsPath)
	if err != nil {
		return errdefs.InvalidArgument("user namespace %s: %v", usernsPath, err)
	}
	defer ns.Close()
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for _, l := range lowers {
		tree, err := addIdmappedLower(fsfd, l, ns)
		if err != nil {
			return err
		}
		// Open until the overlay is made: closing the last fd of a
		// detached tree dissolves it, and overlay then fails to clone it.
		defer tree.Close()
	}
	if upper != "" {
		if err := os.Chown(upper, rootUID, rootGID); err != nil {
			return fmt.Errorf("give upper dir to the container's root: %w", err)
		}
		for _, kv := range [][2]string{{"upperdir", upper}, {"workdir", work}} {
			if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
				return fmt.Errorf("overlay %s: %w", kv[0], err)
			}
		}
	}
	// The plain overlay goes first: two overlays sharing an upper dir
	// would both be live otherwise (the kernel warns, and refuses with
	// index=on). A failure after this leaves the rootfs unmounted, and the
	// create that called us fails and removes it.
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("unmount plain rootfs: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create idmapped overlay: %w", err)
	}
	attr := 0
	if upper == "" {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount idmapped overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount idmapped rootfs: %w", err)
	}
	return nil
}

func addIdmappedLower(fsfd int, dir string, ns *os.File) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_tree layer %s: %w", dir, err)
	}
	tree := os.NewFile(uintptr(fd), dir)
	if err := idmapTree(tree, ns, false); err != nil {
		tree.Close()
		return nil, err
	}
	if err := unix.FsconfigSetFd(fsfd, "lowerdir+", fd); err != nil {
		tree.Close()
		return nil, fmt.Errorf("overlay idmapped lowerdir %s: %w", dir, err)
	}
	return tree, nil
}

// overlayLayers reads the layers of the overlay mounted at target from
// mountinfo: "lowerdir+=" once per layer (the new mount API) or
// "lowerdir=a:b" (mount(2)), upperdir and workdir.
func overlayLayers(target string) (lowers []string, upper, work string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, "", "", fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var super string
	found := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 || len(fields) < 5 || unescapeMountinfo(fields[4]) != target {
			continue
		}
		// The last entry for the mount point is the one on top.
		found = fields[sep+1] == "overlay"
		super = fields[sep+3]
	}
	if err := sc.Err(); err != nil {
		return nil, "", "", fmt.Errorf("read mountinfo: %w", err)
	}
	if !found {
		return nil, "", "", errdefs.FailedPrecondition("rootfs %s is not an overlay mount", target)
	}
	for _, o := range splitOptions(super) {
		k, v, _ := strings.Cut(o, "=")
		v = unescapeMountinfo(v)
		switch k {
		case "lowerdir+":
			lowers = append(lowers, v)
		case "lowerdir":
			lowers = append(lowers, splitLowerdir(v)...)
		case "upperdir":
			upper = v
		case "workdir":
			work = v
		}
	}
	if len(lowers) == 0 {
		return nil, "", "", fmt.Errorf("overlay at %s: no lower layer in %q", target, super)
	}
	return lowers, upper, work, nil
}

// splitOptions splits super options at commas the kernel did not escape.
func splitOptions(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ',':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// splitLowerdir splits "a:b" at colons not escaped as "\:".
func splitLowerdir(s string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == ':' {
			cur.WriteByte(':')
			i++
			continue
		}
		if s[i] == ':' {
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(out, cur.String())
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space)
// and the backslash before a comma, equals sign or backslash ("\:" stays,
// for splitLowerdir).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`,=\`, s[i+1]) >= 0 {
			b.WriteByte(s[i+1])
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
