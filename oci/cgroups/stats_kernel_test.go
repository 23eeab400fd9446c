package cgroups

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cri-server/cri-server/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestStatsCPUUsage(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) []Option
	}{
		{name: "host layout (v1 cpuacct)", opts: func(*testing.T) []Option { return nil }},
		{name: "v2 cpu.stat", opts: func(t *testing.T) []Option { return unifiedV2(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t, tt.opts(t)...)
			c := startChild(t, spinner)
			if err := m.Apply(c.pid()); err != nil {
				t.Fatal(err)
			}
			c.go_()
			// On a loaded machine the spinner gets a slice of a core: wait
			// for the counter to pass 50ms of CPU rather than for 200ms.
			var st *Stats
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var err error
				if st, err = m.Stats(); err != nil {
					t.Fatal(err)
				}
				if st.CPU.UsageNanos >= uint64(50*time.Millisecond) || time.Now().After(deadline) {
					break
				}
			}
			if st.CPU.UsageNanos < uint64(50*time.Millisecond) {
				t.Errorf("cpu usage %v after 10s of spinning", time.Duration(st.CPU.UsageNanos))
			}
			if err := m.Kill(unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = c.wait(t)
			waitEmpty(t, m)
		})
	}
}

func TestStatsOfRemovedCgroupIsNotFound(t *testing.T) {
	requireRoot(t)
	m, err := New(testPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Stats after Destroy = %v, want not found", err)
	}
}

// The hybrid host's hugetlb lives in the unified hierarchy, enabled in the
// root's cgroup.subtree_control. Writing the shared root is opt-in.
func TestHugetlbViaUnified(t *testing.T) {
	requireRoot(t)
	l, _ := DetectLayout()
	if l.Mode != ModeHybrid && l.Mode != ModeV2 {
		t.Skip("no unified hierarchy")
	}
	sizes := hugePageSizes()
	if len(sizes) == 0 {
		t.Skip("no huge page sizes")
	}
	sub, _ := os.ReadFile(filepath.Join(l.Unified, "cgroup.subtree_control"))
	if !slices.Contains(strings.Fields(string(sub)), "hugetlb") && os.Getenv("CRI_SERVER_TEST_CGROUP_ROOT") != "1" {
		t.Skip("hugetlb not enabled in the cgroup2 root; set CRI_SERVER_TEST_CGROUP_ROOT=1 to let the test enable it")
	}
	// The kernel rounds a limit down to whole pages: two pages of the
	// smallest size (ReadDir lists 1GB before 2MB).
	size, limit := "", uint64(0)
	for _, hs := range sizes {
		var n uint64
		var unit string
		fmt.Sscanf(hs.name, "%d%s", &n, &unit)
		b := n << map[string]uint{"KB": 10, "MB": 20, "GB": 30}[unit]
		if limit == 0 || 2*b < limit {
			size, limit = hs.name, 2*b
		}
	}
	m := hostManager(t)
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: size, Limit: limit}}}); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, m.Paths()[""], "hugetlb."+size+".max"); got != strconv.FormatUint(limit, 10) {
		t.Fatalf("hugetlb.%s.max = %q", size, got)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Hugetlb[size]; !ok {
		t.Fatalf("stats hugetlb %v lacks %s", st.Hugetlb, size)
	}
}

func TestStatsReaderReopensAndSweeps(t *testing.T) {
	requireRoot(t)
	m, err := New(testPath(t))
	if err != nil {
		t.Fatal(err)
	}
	mustDestroy(t, m)
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	r := NewStatsReader()
	defer r.Close()
	out := make([]Stats, 1)
	if errs := r.ReadMany([]Manager{m}, out); errs != nil {
		t.Fatal(errs)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if errs := r.ReadMany([]Manager{m}, out); len(errs) != 1 || !errors.Is(errs[0], errdefs.ErrNotFound) {
		t.Fatalf("read of a removed cgroup: %v, want not found", errs)
	}
	// Recreated at the same path: the cached files are stale, not fatal.
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	if errs := r.ReadMany([]Manager{m}, out); errs != nil {
		t.Fatalf("read after recreate: %v", errs)
	}
	for i := 0; i < 3; i++ {
		r.ReadMany(nil, nil)
	}
	if len(r.fds) != 0 {
		t.Fatalf("%d files still open after the container left the list", len(r.fds))
	}
}

// A process with two inherited socket fds: the full reader counts one
// process, its fds (stdio, the sockets and any the test inherited) and two sockets, as
// cAdvisor's container_processes/file_descriptors/sockets do.
func TestStatsProcsFDsSockets(t *testing.T) {
	tests := []struct {
		name string
		opts func(t *testing.T) []Option
	}{
		{name: "host layout (v1)", opts: func(*testing.T) []Option { return nil }},
		{name: "v2 cgroup.procs", opts: func(t *testing.T) []Option { return unifiedV2(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t, tt.opts(t)...)
			if err := m.Apply(0); err != nil {
				t.Fatal(err)
			}
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
			defer a.Close()
			defer b.Close()
			cmd := exec.Command("sleep", "100")
			cmd.ExtraFiles = []*os.File{a, b}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			if err := m.Apply(cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			// The child also inherits whatever non-CLOEXEC fds this test
			// was started with: count its table directly for the total,
			// once sleep sleeps (while ld.so loads libc it holds more).
			waitInSyscall(t, cmd.Process.Pid, "35", "230") // nanosleep, clock_nanosleep
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
			if err != nil || len(ents) < 5 {
				t.Fatalf("child fds: %d, %v", len(ents), err)
			}
			want := ProcsStats{Processes: 1, FDs: uint64(len(ents)), Sockets: 2}
			r := NewStatsReader()
			defer r.Close()
			r.Full = true
			out := make([]Stats, 1)
			var got ProcsStats
			// exec replaces the Go child's image asynchronously: wait for
			// sleep to be running with only what it inherited.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if errs := r.ReadMany([]Manager{m}, out); errs != nil {
					t.Fatal(errs)
				}
				if got = out[0].Procs; got == want {
					break
				}
			}
			if got != want {
				t.Fatalf("procs %+v, want %+v", got, want)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if errs := r.ReadMany([]Manager{m}, out); errs != nil {
				t.Fatal(errs)
			}
			if out[0].Procs != (ProcsStats{}) {
				t.Fatalf("procs after the process exited: %+v", out[0].Procs)
			}
		})
	}
}

// waitInSyscall waits until pid blocks in one of the syscalls (numbers as
// /proc/<pid>/syscall prints them).
func waitInSyscall(t *testing.T, pid int, nrs ...string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if err != nil {
			t.Fatal(err)
		}
		last = strings.TrimSpace(string(b))
		if f := strings.Fields(last); len(f) > 0 && slices.Contains(nrs, f[0]) {
			return
		}
	}
	t.Fatalf("pid %d not in syscall %v after 10s: %s", pid, nrs, last)
}
