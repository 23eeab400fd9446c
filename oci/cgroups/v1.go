package cgroups

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// v1Manager manages one directory per v1 hierarchy, plus (hybrid) a v2
// helper for what the unified hierarchy owns.
type v1Manager struct {
	path    string
	dirs    map[string]string // controller -> dir; co-mounted share one
	mounts  map[string]string // distinct hierarchy dir -> its mount point
	unified *v2Manager        // hybrid only
	log     *slog.Logger

	mu      sync.Mutex
	created []string
}

func newV1(l Layout, p string, o *options) *v1Manager {
	m := &v1Manager{path: p, dirs: map[string]string{}, mounts: map[string]string{}, log: o.log}
	for ctrl, mnt := range l.V1 {
		dir := filepath.Join(mnt, p)
		m.dirs[ctrl] = dir
		m.mounts[dir] = mnt
	}
	if l.Mode == ModeHybrid && l.Unified != "" {
		m.unified = newV2(l.Unified, p, true, o)
	}
	return m
}

func (m *v1Manager) Paths() map[string]string {
	out := make(map[string]string, len(m.dirs)+1)
	for k, v := range m.dirs {
		out[k] = v
	}
	if m.unified != nil {
		out[""] = m.unified.dir
	}
	return out
}

// sortedDirs gives a stable order so failures and logs are reproducible.
func (m *v1Manager) sortedDirs() []string {
	dirs := make([]string, 0, len(m.mounts))
	for d := range m.mounts {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
}

func (m *v1Manager) Apply(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var made []string
	undo := func() { rmdirAll(made) }
	for _, dir := range m.sortedDirs() {
		mnt := m.mounts[dir]
		created, err := mkdirChain(mnt, m.path, nil)
		if err != nil {
			undo()
			return err
		}
		made = append(made, created...)
		if dir == m.dirs["cpuset"] {
			if err := fillCpuset(mnt, m.path, created); err != nil {
				undo()
				return err
			}
		}
		if pid > 0 {
			if err := writeFile(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
				undo()
				return fmt.Errorf("join cgroup %s: %w", dir, err)
			}
		}
	}
	if m.unified != nil {
		if err := m.unified.Apply(pid); err != nil {
			undo()
			return err
		}
	}
	m.created = append(m.created, made...)
	if len(made) > 0 {
		m.log.Info("cgroup created", "cgroup", m.path, "mode", "v1")
	}
	return nil
}

// fillCpuset copies cpuset.cpus and cpuset.mems down from the parent into
// every level that has them empty: a v1 cpuset cgroup starts empty and
// refuses tasks until both are set. created are the levels Apply has just
// made (outermost first), empty by nature: when their parent has both set,
// only they are filled, without reading every level.
func fillCpuset(mnt, rel string, created []string) error {
	if len(created) > 0 {
		if vals, ok := parentCpuset(filepath.Dir(created[0])); ok {
			for _, dir := range created {
				for i, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if err := writeFile(dir, f, vals[i]); err != nil {
						return fmt.Errorf("copy %s from parent: %w", f, err)
					}
				}
			}
			return nil
		}
	}
	return fillCpusetWalk(mnt, rel)
}

// parentCpuset reads a cgroup's cpuset.cpus and cpuset.mems; ok only when
// both are set.
func parentCpuset(dir string) (vals [2]string, ok bool) {
	for i, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		v, err := readFile(dir, f)
		if err != nil || v == "" {
			return vals, false
		}
		vals[i] = v
	}
	return vals, true
}

// fillCpusetWalk fills every empty level from the hierarchy's root down.
func fillCpusetWalk(mnt, rel string) error {
	parent := mnt
	for _, part := range splitPath(rel) {
		dir := filepath.Join(parent, part)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := readFile(dir, f)
			if err != nil {
				return err
			}
			if cur != "" {
				continue
			}
			v, err := readFile(parent, f)
			if err != nil {
				return err
			}
			if err := writeFile(dir, f, v); err != nil {
				return fmt.Errorf("copy %s from parent: %w", f, err)
			}
		}
		parent = dir
	}
	return nil
}

func (m *v1Manager) Freeze() error {
	dir, ok := m.dirs["freezer"]
	if !ok {
		return errUnsupported("no v1 freezer hierarchy")
	}
	// FREEZING can linger while a task is in an uninterruptible sleep;
	// writing FROZEN again retries the tasks that were not yet frozen. A
	// task caught mid-fork can keep the cgroup in FREEZING for good, so
	// every 50 tries thaw and start over, as runc does.
	buf := make([]byte, 0, 32)
	deadline := time.Now().Add(10 * time.Second)
	for i, delay := 0, 100*time.Microsecond; ; i++ {
		if i%50 == 49 {
			_ = writeFile(dir, "freezer.state", "THAWED")
			time.Sleep(10 * time.Millisecond)
		}
		if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
			return fmt.Errorf("freeze cgroup %s: %w", dir, err)
		}
		var err error
		if buf, err = readInto(buf, filepath.Join(dir, "freezer.state")); err != nil {
			return fmt.Errorf("freeze cgroup %s: %w", dir, classify(err))
		}
		if string(trimSpace(buf)) == "FROZEN" {
			return nil
		}
		if time.Now().After(deadline) {
			_ = writeFile(dir, "freezer.state", "THAWED")
			return fmt.Errorf("freeze cgroup %s: %w", dir, errTimeout("still %s after 10s", trimSpace(buf)))
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}

func (m *v1Manager) Thaw() error {
	dir, ok := m.dirs["freezer"]
	if !ok {
		return errUnsupported("no v1 freezer hierarchy")
	}
	if err := writeFile(dir, "freezer.state", "THAWED"); err != nil {
		return fmt.Errorf("thaw cgroup %s: %w", dir, err)
	}
	return nil
}

// Kill: on a hybrid host every process of the container is also in the
// unified directory, whose cgroup.kill (5.14+) kills the whole subtree
// atomically; otherwise freeze, signal each pid, thaw.
func (m *v1Manager) Kill(sig unix.Signal) error {
	if sig == unix.SIGKILL && m.unified != nil && fileExists(filepath.Join(m.unified.dir, "cgroup.kill")) {
		if err := m.unified.Kill(sig); err != nil {
			return err
		}
		// A process put into the v1 directories by other means than Apply
		// is not in the unified one: signal whatever v1 still lists.
		pids, err := m.Pids()
		if err != nil {
			return err
		}
		return signalPids(pids, sig)
	}
	if _, ok := m.dirs["freezer"]; !ok {
		pids, err := m.Pids()
		if err != nil {
			return err
		}
		return signalPids(pids, sig)
	}
	return killFrozen(m, sig)
}

func (m *v1Manager) Pids() ([]int, error) {
	for _, c := range []string{"freezer", "pids", "memory", "cpu", "devices"} {
		if dir, ok := m.dirs[c]; ok {
			return readPids(dir, nil)
		}
	}
	for _, dir := range m.sortedDirs() {
		return readPids(dir, nil)
	}
	return nil, nil
}

func (m *v1Manager) OOMKillCount() (uint64, error) {
	dir, ok := m.dirs["memory"]
	if !ok {
		return 0, errUnsupported("no v1 memory hierarchy")
	}
	return readOOMKills(filepath.Join(dir, "memory.oom_control"))
}

func (m *v1Manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for _, dir := range m.sortedDirs() {
		if err := removeTree(dir); err != nil && first == nil {
			first = err
		}
	}
	if m.unified != nil {
		if err := m.unified.Destroy(); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return first
	}
	rmdirAll(m.created)
	m.created = nil
	return nil
}

func (m *v1Manager) Stats() (*Stats, error) { return statsOf(m) }
