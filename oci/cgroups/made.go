package cgroups

import (
	"path/filepath"
	"strings"
)

// MadeDirs is implemented by this package's managers. Destroy removes the
// parents a Manager created itself, but a command line's create and delete
// run in different processes: the creator records Made in the container's
// state and the deleter's Manager Adopts it before Destroy, so a
// cgroupsPath whose parents did not exist ("testdir/cgrouptest/ctr")
// leaves nothing behind.
type MadeDirs interface {
	// Made lists the directories Apply created, outermost first per
	// hierarchy.
	Made() []string
	// Adopt makes dirs (from Made) this Manager's to remove. Only this
	// Manager's own directories and their ancestors inside its hierarchies
	// are taken; anything else is ignored, so a tampered record cannot
	// remove another cgroup.
	Adopt(dirs []string)
}

func (m *v1Manager) Made() []string {
	m.mu.Lock()
	out := append([]string(nil), m.created...)
	m.mu.Unlock()
	if m.unified != nil {
		out = append(out, m.unified.Made()...)
	}
	return out
}

func (m *v1Manager) Adopt(dirs []string) {
	var v1 []string
	for _, d := range dirs {
		if m.unified != nil && isAncestorIn(m.unified.root, m.unified.dir, d) {
			m.unified.Adopt([]string{d})
			continue
		}
		for dir, mnt := range m.mounts {
			if isAncestorIn(mnt, dir, d) {
				v1 = append(v1, d)
				break
			}
		}
	}
	m.mu.Lock()
	m.created = append(m.created, v1...)
	m.mu.Unlock()
}

func (m *v2Manager) Made() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.created...)
}

func (m *v2Manager) Adopt(dirs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range dirs {
		if isAncestorIn(m.root, m.dir, d) {
			m.created = append(m.created, d)
		}
	}
}

// isAncestorIn reports whether d is dir or one of its ancestors strictly
// below the mount point mnt.
func isAncestorIn(mnt, dir, d string) bool {
	d = filepath.Clean(d)
	if d == filepath.Clean(mnt) || !strings.HasPrefix(d, filepath.Clean(mnt)+"/") {
		return false
	}
	return d == dir || strings.HasPrefix(dir, d+"/")
}
