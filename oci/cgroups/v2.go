package cgroups

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v2Manager manages one directory of the unified hierarchy. In hybrid mode
// it is the v1 manager's helper and owns only what v2 owns there.
type v2Manager struct {
	root   string // cgroup2 mount point
	path   string // "/kubepods/pod1/ctr"
	dir    string
	hybrid bool
	log    *slog.Logger
	// ctrls restricts the controllers enabled in parents; nil means all.
	ctrls []string

	mu      sync.Mutex
	created []string // directories this manager made, outermost first
}

func newV2(root, p string, hybrid bool, o *options) *v2Manager {
	m := &v2Manager{root: root, path: p, dir: filepath.Join(root, p), hybrid: hybrid, log: o.log}
	if o.v2CtrlSet {
		m.ctrls = append([]string{}, o.v2Controllers...)
	}
	return m
}

func (m *v2Manager) Paths() map[string]string { return map[string]string{"": m.dir} }

func (m *v2Manager) Apply(pid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Pure v2: a controller is usable in the leaf only when every ancestor
	// enables it in cgroup.subtree_control (runc does the same). Hybrid
	// enables on demand in Set, so a container that asks for no hugetlb
	// limit never changes the root's subtree_control.
	if !m.hybrid {
		if err := m.enableControllers(m.ctrls, m.ctrls == nil); err != nil {
			return err
		}
	}
	created, err := mkdirChain(m.root, m.path, nil)
	if err != nil {
		return err
	}
	if pid > 0 {
		if err := writeFile(m.dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			rmdirAll(created)
			return fmt.Errorf("join cgroup %s: %w", m.dir, err)
		}
	}
	m.created = append(m.created, created...)
	if len(created) > 0 && !m.hybrid {
		m.log.Info("cgroup created", "cgroup", m.dir, "mode", "v2")
	}
	return nil
}

// enableControllers writes "+ctrl" into the subtree_control of the root
// and every ancestor of the leaf (not the leaf itself: v2 forbids processes
// in a cgroup that delegates to children). all means every controller the
// ancestor offers.
func (m *v2Manager) enableControllers(want []string, all bool) error {
	if !all && len(want) == 0 {
		return nil
	}
	parts := strings.Split(strings.Trim(m.path, "/"), "/")
	dir := m.root
	for i := 0; i < len(parts); i++ {
		avail, err := readFile(dir, "cgroup.controllers")
		if err != nil {
			return err
		}
		enabled, err := readFile(dir, "cgroup.subtree_control")
		if err != nil {
			return err
		}
		have := strings.Fields(enabled)
		var add []string
		for _, c := range strings.Fields(avail) {
			if (all || slices.Contains(want, c)) && !slices.Contains(have, c) {
				add = append(add, "+"+c)
			}
		}
		if !all {
			for _, c := range want {
				if !strings.Contains(" "+avail+" ", " "+c+" ") {
					return errUnsupported("cgroup v2 controller %s is not available in %s", c, dir)
				}
			}
		}
		if len(add) > 0 {
			if err := writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
				// The kernel applies the list all or nothing; one refused
				// controller (say cpu with a realtime task in the parent)
				// must not cost the others when we only asked for "all".
				if !all {
					return fmt.Errorf("enable controllers %v in %s: %w", add, dir, err)
				}
				for _, c := range add {
					if err := writeFile(dir, "cgroup.subtree_control", c); err != nil {
						m.log.Debug("cgroup controller not enabled", "cgroup", dir, "controller", c, "error", err)
					}
				}
			}
		}
		if i == len(parts)-1 {
			break
		}
		dir = filepath.Join(dir, parts[i])
		if unix.Mkdir(dir, 0o755) == nil {
			m.created = append(m.created, dir)
		}
	}
	return nil
}

func (m *v2Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if m.hybrid {
		return m.setHybrid(r)
	}
	for _, set := range []func(*specs.LinuxResources) error{
		m.setCPU, m.setCpuset, m.setMemory, m.setPids, m.setIO, m.setHugetlb, m.setRdma, m.setDevices, m.setUnified,
	} {
		if err := set(r); err != nil {
			return fmt.Errorf("set cgroup %s: %w", m.dir, err)
		}
	}
	return nil
}

// setHybrid writes only what the unified hierarchy owns on a hybrid host:
// hugetlb when v1 has no hugetlb hierarchy, and unified keys whose files
// exist there.
func (m *v2Manager) setHybrid(r *specs.LinuxResources) error {
	if len(r.HugepageLimits) > 0 {
		m.mu.Lock()
		err := m.enableControllers([]string{"hugetlb"}, false)
		m.mu.Unlock()
		if err != nil {
			return err
		}
		if err := m.setHugetlb(r); err != nil {
			return fmt.Errorf("set cgroup %s: %w", m.dir, err)
		}
	}
	if err := m.setUnified(r); err != nil {
		return fmt.Errorf("set cgroup %s: %w", m.dir, err)
	}
	return nil
}

func (m *v2Manager) Freeze() error { return m.setFrozen(true) }
func (m *v2Manager) Thaw() error   { return m.setFrozen(false) }

// setFrozen writes cgroup.freeze and waits until cgroup.events agrees: the
// kernel freezes tasks asynchronously, and a caller that reads Pids or
// signals right after Freeze needs them stopped.
func (m *v2Manager) setFrozen(frozen bool) error {
	want, verb := "1", "freeze"
	if !frozen {
		want, verb = "0", "thaw"
	}
	if err := writeFile(m.dir, "cgroup.freeze", want); err != nil {
		return fmt.Errorf("%s cgroup %s: %w", verb, m.dir, err)
	}
	buf := make([]byte, 0, 128)
	deadline := time.Now().Add(5 * time.Second)
	for delay := 100 * time.Microsecond; ; {
		var err error
		buf, err = readInto(buf, filepath.Join(m.dir, "cgroup.events"))
		if err != nil {
			return fmt.Errorf("%s cgroup %s: %w", verb, m.dir, classify(err))
		}
		state := ""
		eachKV(buf, func(k []byte, v uint64) {
			if string(k) == "frozen" {
				state = strconv.FormatUint(v, 10)
			}
		})
		if state == want {
			return nil
		}
		if time.Now().After(deadline) {
			if frozen {
				_ = writeFile(m.dir, "cgroup.freeze", "0")
			}
			return fmt.Errorf("%s cgroup %s: %w", verb, m.dir, errTimeout("cgroup.events never showed frozen %s", want))
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}

func (m *v2Manager) Kill(sig unix.Signal) error {
	if sig == unix.SIGKILL && fileExists(filepath.Join(m.dir, "cgroup.kill")) {
		if err := writeFile(m.dir, "cgroup.kill", "1"); err != nil {
			return fmt.Errorf("kill cgroup %s: %w", m.dir, err)
		}
		return nil
	}
	return killFrozen(m, sig)
}

func (m *v2Manager) Pids() ([]int, error) { return readPids(m.dir, nil) }

func (m *v2Manager) OOMKillCount() (uint64, error) {
	return readOOMKills(filepath.Join(m.dir, "memory.events"))
}

func (m *v2Manager) Destroy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := removeTree(m.dir); err != nil {
		return err
	}
	rmdirAll(m.created)
	m.created = nil
	return nil
}

// killFrozen signals every pid while the cgroup is frozen, so no process can
// fork a child that escapes the loop. A signal other than SIGKILL is only
// delivered at thaw, which is what the caller wants anyway.
func killFrozen(m interface {
	Freeze() error
	Thaw() error
	Pids() ([]int, error)
}, sig unix.Signal) error {
	frozeErr := m.Freeze()
	pids, err := m.Pids()
	if err == nil {
		err = signalPids(pids, sig)
	}
	if frozeErr == nil {
		if terr := m.Thaw(); terr != nil && err == nil {
			err = terr
		}
	}
	if err != nil {
		return fmt.Errorf("kill cgroup: %w", err)
	}
	return nil
}
