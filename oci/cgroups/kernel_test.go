package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cri-server/cri-server/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostManager is a Manager on the host's real layout (hybrid here).
func hostManager(t testing.TB, opts ...Option) Manager {
	t.Helper()
	requireRoot(t)
	m, err := New(testPath(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	mustDestroy(t, m)
	return m
}

func TestPidsLimitRefusesFork(t *testing.T) {
	tests := []struct {
		name     string
		limit    int64
		wantFork bool
	}{
		{name: "limit 1 refuses the next fork", limit: 1, wantFork: false},
		{name: "limit 10 allows it", limit: 10, wantFork: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t)
			c := startChild(t, "/bin/true && echo FORKED")
			if err := m.Apply(c.pid()); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &tt.limit}}); err != nil {
				t.Fatal(err)
			}
			c.go_()
			err := c.wait(t)
			forked := strings.Contains(c.out.String(), "FORKED")
			if forked != tt.wantFork {
				t.Fatalf("forked=%v want %v (exit %v, output %q)", forked, tt.wantFork, err, c.out)
			}
		})
	}
}

func TestMemoryLimitOOMKill(t *testing.T) {
	m := hostManager(t)
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := m.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, err := m.OOMKillCount()
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, "head -c 256m /dev/zero | tail")
	if err := m.Apply(c.pid()); err != nil {
		t.Fatal(err)
	}
	lim := int64(32 << 20)
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim, Swap: &lim}}); err != nil {
		t.Fatal(err)
	}
	c.go_()
	_ = c.wait(t)
	select {
	case <-events:
	case <-time.After(10 * time.Second):
		t.Fatal("no OOM event")
	}
	after, err := m.OOMKillCount()
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("OOMKillCount %d -> %d, want an increase", before, after)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.OOMKills != after || st.Memory.Limit != uint64(lim) {
		t.Fatalf("stats oom_kills=%d limit=%d, want %d and %d", st.Memory.OOMKills, st.Memory.Limit, after, lim)
	}
	cancel()
	for range events { // the channel must close on cancel
	}
}

func TestOOMEventsClosedOnDestroy(t *testing.T) {
	requireRoot(t)
	m, err := New(testPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	events, err := m.OOMEvents(context.Background())
	if err != nil {
		m.Destroy()
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("OOMEvents channel not closed after Destroy")
		}
	}
}

// spinner is a shell busy-looping, so frozen means "no CPU time gained".
const spinner = "while :; do :; done"

func TestFreezeThaw(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) []Option
		// v1's freezer parks tasks in TASK_FROZEN, shown as D.
		wantState string
	}{
		{name: "host layout (v1 freezer)", opts: func(*testing.T) []Option { return nil }, wantState: "D"},
		{name: "v2 cgroup.freeze", opts: func(t *testing.T) []Option { return unifiedV2(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t, tt.opts(t)...)
			c := startChild(t, spinner)
			if err := m.Apply(c.pid()); err != nil {
				t.Fatal(err)
			}
			c.go_()
			time.Sleep(20 * time.Millisecond)
			if err := m.Freeze(); err != nil {
				t.Fatal(err)
			}
			state, t0 := procStat(t, c.pid())
			if tt.wantState != "" && state != tt.wantState {
				t.Errorf("frozen state %q, want %q", state, tt.wantState)
			}
			time.Sleep(150 * time.Millisecond)
			if _, t1 := procStat(t, c.pid()); t1 != t0 {
				t.Errorf("frozen process ran: cpu ticks %d -> %d", t0, t1)
			}
			if err := m.Thaw(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				state, t2 := procStat(t, c.pid())
				if t2 > t0 && state != "D" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("thawed process does not run (state %s)", state)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestKillEndsEveryProcess(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) []Option
		sig  unix.Signal
	}{
		{name: "host SIGKILL (hybrid: unified cgroup.kill)", opts: func(*testing.T) []Option { return nil }, sig: unix.SIGKILL},
		{name: "host SIGTERM (v1 freeze, signal, thaw)", opts: func(*testing.T) []Option { return nil }, sig: unix.SIGTERM},
		{name: "v2 cgroup.kill", opts: func(t *testing.T) []Option { return unifiedV2(t) }, sig: unix.SIGKILL},
		{name: "v2 SIGTERM via cgroup.freeze", opts: func(t *testing.T) []Option { return unifiedV2(t) }, sig: unix.SIGTERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t, tt.opts(t)...)
			c := startChild(t, "sleep 100 & sleep 100 & sleep 100 & wait")
			if err := m.Apply(c.pid()); err != nil {
				t.Fatal(err)
			}
			c.go_()
			deadline := time.Now().Add(5 * time.Second)
			for {
				pids, err := m.Pids()
				if err != nil {
					t.Fatal(err)
				}
				if len(pids) == 4 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("pids %v, want 4", pids)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := m.Kill(tt.sig); err != nil {
				t.Fatal(err)
			}
			_ = c.wait(t)
			waitEmpty(t, m)
		})
	}
}

func TestDestroyRemovesTreeAndIsIdempotent(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) []Option
	}{
		{name: "host layout", opts: func(*testing.T) []Option { return nil }},
		{name: "v2", opts: func(t *testing.T) []Option { return unifiedV2(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRoot(t)
			p := testPath(t)
			m, err := New(p, tt.opts(t)...)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Apply(0); err != nil {
				t.Fatal(err)
			}
			// A container may make sub-cgroups of its own (cgroupns).
			for _, d := range m.Paths() {
				if err := os.MkdirAll(filepath.Join(d, "sub", "deeper"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 2; i++ {
				if err := m.Destroy(); err != nil {
					t.Fatalf("Destroy #%d: %v", i+1, err)
				}
			}
			for _, d := range m.Paths() {
				if _, err := os.Stat(filepath.Dir(d)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("parent %s it created still there (%v)", filepath.Dir(d), err)
				}
			}
		})
	}
}

func TestDestroyKeepsParentItDidNotCreate(t *testing.T) {
	requireRoot(t)
	p := testPath(t)
	pod, err := New(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if err := pod.Apply(0); err != nil {
		t.Fatal(err)
	}
	defer pod.Destroy()
	ctr, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctr.Apply(0); err != nil {
		t.Fatal(err)
	}
	if err := ctr.Destroy(); err != nil {
		t.Fatal(err)
	}
	for k, d := range pod.Paths() {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("pod cgroup %s (%s) removed by the container's Destroy", d, k)
		}
	}
	if err := pod.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestSetReadsBack(t *testing.T) {
	m := hostManager(t)
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	paths := m.Paths()
	r := &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)),
			Cpus: "0", Mems: "0", Idle: ptr(int64(0))},
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(128 << 20)),
			Reservation: ptr(int64(32 << 20)), Swappiness: ptr(uint64(10))},
		Pids: &specs.LinuxPids{Limit: ptr(int64(42))},
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ctrl, file, want string
	}{
		{"cpu shares", "cpu", "cpu.shares", "512"},
		{"cfs quota", "cpu", "cpu.cfs_quota_us", "50000"},
		{"cfs period", "cpu", "cpu.cfs_period_us", "100000"},
		{"cpuset cpus", "cpuset", "cpuset.cpus", "0"},
		{"cpuset mems", "cpuset", "cpuset.mems", "0"},
		{"memory limit", "memory", "memory.limit_in_bytes", "67108864"},
		{"memory+swap", "memory", "memory.memsw.limit_in_bytes", "134217728"},
		{"soft limit", "memory", "memory.soft_limit_in_bytes", "33554432"},
		{"swappiness", "memory", "memory.swappiness", "10"},
		{"pids", "pids", "pids.max", "42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := paths[tt.ctrl]
			if !ok {
				t.Skipf("no %s hierarchy", tt.ctrl)
			}
			if got := readBack(t, d, tt.file); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
	// Lowering after raising must pass the memsw ordering rule both ways.
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(16 << 20)), Swap: ptr(int64(16 << 20))}}); err != nil {
		t.Fatalf("lower memory: %v", err)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Limit != 42 || st.Memory.Limit != 16<<20 {
		t.Errorf("stats pids.limit=%d memory.limit=%d", st.Pids.Limit, st.Memory.Limit)
	}
}

func TestDeviceRules(t *testing.T) {
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}, // /dev/null
	}
	tests := []struct {
		name string
		opts func(t *testing.T) []Option
	}{
		{name: "v1 devices.allow/deny", opts: func(*testing.T) []Option { return nil }},
		{name: "v2 eBPF filter", opts: func(t *testing.T) []Option { return unifiedV2(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t, tt.opts(t)...)
			c := startChild(t, "echo x >/dev/null && echo NULL-OK; head -c1 /dev/zero >/dev/null 2>&1 || echo ZERO-DENIED")
			if err := m.Apply(c.pid()); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
				t.Fatal(err)
			}
			// A second Set replaces the program rather than stacking.
			if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
				t.Fatal(err)
			}
			c.go_()
			_ = c.wait(t)
			out := c.out.String()
			if !strings.Contains(out, "NULL-OK") || !strings.Contains(out, "ZERO-DENIED") {
				t.Fatalf("output %q: want /dev/null allowed and /dev/zero denied", out)
			}
		})
	}
}

func TestUnifiedKeysRejected(t *testing.T) {
	m := hostManager(t, unifiedV2(t)...)
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  string
	}{
		{"path escape", "../../cgroup.procs"},
		{"slash", "sub/memory.max"},
		{"no dot", "memory"},
		{"process mover", "cgroup.procs"},
		{"absent controller file", "memory.max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := m.Set(&specs.LinuxResources{Unified: map[string]string{tt.key: "1"}})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Set(%q) = %v, want invalid argument", tt.key, err)
			}
		})
	}
	// A real file on this v2 hierarchy is written.
	if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"cgroup.max.descendants": "5"}}); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, m.Paths()[""], "cgroup.max.descendants"); got != "5" {
		t.Fatalf("cgroup.max.descendants = %q", got)
	}
}

func TestApplyFailureUndoes(t *testing.T) {
	requireRoot(t)
	p := testPath(t) // its cleanup fails the test if any directory is left
	m, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	// pid_max is at most 2^22: this pid cannot exist.
	err = m.Apply(1 << 23)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Apply(no such pid) = %v, want not found", err)
	}
}

func TestSystemdNamingOnCgroupfs(t *testing.T) {
	requireRoot(t)
	top := strings.TrimPrefix(filepath.Dir(testPath(t)), "/crisrv-test-")
	slice := "crisrvtest" + top + "-pod1.slice"
	m, err := New(slice + ":cri-server:abc")
	if err != nil {
		t.Fatal(err)
	}
	topDir := "crisrvtest" + top + ".slice"
	want := "/" + topDir + "/" + slice + "/cri-server-abc.scope"
	c := startChild(t, "true")
	if err := m.Apply(c.pid()); err != nil {
		t.Fatal(err)
	}
	for k, d := range m.Paths() {
		if !strings.HasSuffix(d, want) {
			t.Errorf("path[%s] = %s, want suffix %s", k, d, want)
		}
	}
	c.go_()
	_ = c.wait(t)
	waitEmpty(t, m)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, mnt := range allMounts(t) {
		if _, err := os.Stat(filepath.Join(mnt, topDir)); err == nil {
			t.Errorf("leaked %s", filepath.Join(mnt, topDir))
		}
	}
}

func TestHybridKillReachesV1OnlyProcess(t *testing.T) {
	m := hostManager(t)
	if _, ok := m.Paths()[""]; !ok {
		t.Skip("not a hybrid host")
	}
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, "sleep 100")
	for k, d := range m.Paths() {
		if k == "" {
			continue // joined by hand, as a tool other than Apply might
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(c.pid())), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Kill(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exit %v, want killed", err)
	}
	waitEmpty(t, m)
}

// Sibling containers that share a parent nobody else owns: each creates it
// if missing and removes it if it made it and it is empty. None may fail.
func TestConcurrentSiblingsSharingParent(t *testing.T) {
	requireRoot(t)
	base := testPath(t)
	errs := make(chan error, 16)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 10; i++ {
				m, err := New(fmt.Sprintf("%s/g%d-%d", base, g, i))
				if err == nil {
					err = m.Apply(0)
				}
				if err == nil {
					err = m.Destroy()
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// The leak check of testPath needs the shared parents gone; whoever
	// made them last may have seen a sibling and left them.
	for _, mnt := range allMounts(t) {
		_ = removeTree(filepath.Join(mnt, filepath.Dir(base)))
	}
}
