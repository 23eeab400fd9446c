package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// podCgroupControllers are the v1 hierarchies a pod's cgroup is made in.
// This is the seam oci/cgroups will replace: only mkdir and rmdir here.
var podCgroupControllers = []string{"memory", "cpu", "pids"}

// validCgroupParent refuses a cgroup_parent that could escape the
// hierarchy.
func validCgroupParent(p string) error {
	if p == "" {
		return nil
	}
	if strings.HasSuffix(p, ".slice") {
		return errdefs.InvalidArgument("cgroup parent %q uses systemd naming; the cgroup driver is cgroupfs", p)
	}
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == ".." || part == "." {
			return errdefs.InvalidArgument("cgroup parent %q: relative component", p)
		}
	}
	return nil
}

// createCgroup makes cgroup parent in each hierarchy, level by level, and
// returns the dirs it created (outermost first) so removal touches only
// those. Dirs that existed (made by the kubelet) are never removed.
func createCgroup(root, parent string) ([]string, error) {
	if parent == "" {
		return nil, nil
	}
	var made []string
	for _, c := range podCgroupControllers {
		base := filepath.Join(root, c)
		if _, err := os.Stat(base); err != nil {
			continue // hierarchy absent on this node
		}
		dir := base
		for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
			dir = filepath.Join(dir, part)
			err := os.Mkdir(dir, 0o755)
			if err == nil {
				made = append(made, dir)
				continue
			}
			if !errors.Is(err, os.ErrExist) {
				removeCgroups(made)
				return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
			}
		}
	}
	return made, nil
}

// removeCgroups removes dirs innermost first. A cgroup still holding
// processes (a container that escaped stop) is left and reported.
func removeCgroups(dirs []string) error {
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdirCgroup(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// rmdirCgroup removes one cgroup dir. Processes killed a moment ago leave
// their cgroup only once the kernel has finished their exit, so EBUSY is
// retried for a short while (runc does the same) before it is reported.
func rmdirCgroup(dir string) error {
	delay := time.Millisecond
	deadline := time.Now().Add(time.Second)
	for {
		err := os.Remove(dir)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// joinCgroup moves pid into parent in every hierarchy present.
func joinCgroup(root, parent string, pid int) error {
	if parent == "" {
		return nil
	}
	for _, c := range podCgroupControllers {
		dir := filepath.Join(root, c, parent)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0); err != nil {
			return fmt.Errorf("move pod init to cgroup %s: %w", dir, err)
		}
	}
	return nil
}
