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

// podCgroupHierarchies lists the hierarchies a pod's cgroup is made in:
// every one mounted under root on a v1 or hybrid node (the v1 controllers,
// the named systemd one, the v2 one beside them), as the kubelet makes a
// pod's cgroup in each. Made in fewer, the executor would make the missing
// levels for the pod's first container and nobody would remove them. On a
// pure v2 node (root is the hierarchy) it is the fixed v1 list, which
// finds nothing there.
func podCgroupHierarchies(root string) []string {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return podCgroupControllers
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return podCgroupControllers
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() { // not the cpu,cpuacct style symlinks: each hierarchy once
			out = append(out, e.Name())
		}
	}
	return out
}

// createCgroup makes cgroup parent in each hierarchy, level by level, and
// returns the dirs it created (outermost first) so removal touches only
// those. Dirs that existed (made by the kubelet) are never removed.
//
// Each dir it is about to make is first appended to journal (when not
// nil), so that a daemon killed before the pod's record is stored leaves a
// list the start-up sweep removes (readCgroupJournal).
func createCgroup(root, parent string, journal *os.File) ([]string, error) {
	if parent == "" {
		return nil, nil
	}
	var made []string
	for _, c := range podCgroupHierarchies(root) {
		base := filepath.Join(root, c)
		if _, err := os.Stat(base); err != nil {
			continue // hierarchy absent on this node
		}
		dir := base
		for _, part := range strings.Split(strings.Trim(parent, "/"), "/") {
			dir = filepath.Join(dir, part)
			if _, err := os.Stat(dir); journal != nil && errors.Is(err, os.ErrNotExist) {
				// Listed before the mkdir: a kill during a slow one (memory
				// cgroups take milliseconds) must still leave it listed. A
				// listed dir that never came is simply not there to remove.
				journal.WriteString(dir + "\n")
			}
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

// cgroupJournal is the file in a pod dir listing the cgroup dirs made for
// the pod, written as they are made.
const cgroupJournal = "cgroups"

// readCgroupJournal reads the dirs a pod's setup made, outermost first.
func readCgroupJournal(podDir string) []string {
	b, err := os.ReadFile(filepath.Join(podDir, cgroupJournal))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
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
