package cgroups

import (
	"errors"

	"context"
	"github.com/cri-server/cri-server/errdefs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fakeTree writes files (path relative to root -> content) into a temp dir
// standing in for a cgroup mount where the kernel has no such controller.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

var v2LeafFiles = []string{"cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle", "cpuset.cpus", "cpuset.mems",
	"memory.max", "memory.swap.max", "memory.low", "pids.max", "io.weight", "io.max",
	"hugetlb.2MB.max", "hugetlb.2MB.rsvd.max", "memory.oom.group", "cgroup.procs"}

func TestV2SetWritesFiles(t *testing.T) {
	files := map[string]string{
		"cgroup.controllers": "cpu memory pids io hugetlb", "cgroup.subtree_control": "",
		"kubepods/cgroup.controllers": "cpu memory pids io hugetlb", "kubepods/cgroup.subtree_control": "cpu",
	}
	for _, f := range v2LeafFiles {
		files["kubepods/ctr/"+f] = ""
	}
	root := fakeTree(t, files)
	m, err := New("/kubepods/ctr", WithLayout(Layout{Mode: ModeV2, Unified: root}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	r := &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(1024)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)),
			Burst: ptr(uint64(1000)), Idle: ptr(int64(1)), Cpus: "0-1", Mems: "0"},
		Memory: &specs.LinuxMemory{Limit: ptr(int64(100 << 20)), Swap: ptr(int64(150 << 20)), Reservation: ptr(int64(50 << 20)),
			Swappiness: ptr(uint64(60))},
		Pids:           &specs.LinuxPids{Limit: ptr(int64(0))},
		BlockIO:        &specs.LinuxBlockIO{Weight: ptr(uint16(500)), ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1000}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Unified:        map[string]string{"memory.oom.group": "1"},
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(root, "kubepods/ctr")
	tests := []struct{ name, file, want string }{
		{"weight from shares", "cpu.weight", "39"},
		{"cpu.max", "cpu.max", "50000 100000"},
		{"burst", "cpu.max.burst", "1000"},
		{"idle", "cpu.idle", "1"},
		{"cpus", "cpuset.cpus", "0-1"},
		{"mems", "cpuset.mems", "0"},
		{"memory.max", "memory.max", "104857600"},
		{"swap alone", "memory.swap.max", "52428800"},
		{"memory.low", "memory.low", "52428800"},
		{"pids unlimited", "pids.max", "max"},
		{"io.weight", "io.weight", "default 4950"},
		{"io.max", "io.max", "8:0 rbps=1000"},
		{"hugetlb", "hugetlb.2MB.max", "4194304"},
		{"hugetlb rsvd", "hugetlb.2MB.rsvd.max", "4194304"},
		{"unified oom group", "memory.oom.group", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readBack(t, leaf, tt.file); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
	// Every ancestor (not the leaf) got the controllers it lacked.
	if got := readBack(t, root, "cgroup.subtree_control"); got != "+cpu +memory +pids +io +hugetlb" {
		t.Errorf("root subtree_control = %q", got)
	}
	if got := readBack(t, root, "kubepods/cgroup.subtree_control"); got != "+memory +pids +io +hugetlb" {
		t.Errorf("kubepods subtree_control = %q", got)
	}
}

func TestHybridEnablesHugetlbOnlyWhenAsked(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"cgroup.controllers": "hugetlb", "cgroup.subtree_control": "",
		"pod/ctr/hugetlb.1GB.max": "", "pod/cgroup.controllers": "hugetlb", "pod/cgroup.subtree_control": "",
	})
	m, err := New("/pod/ctr", WithLayout(Layout{Mode: ModeHybrid, V1: map[string]string{}, Unified: root}))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(5))}}); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, root, "cgroup.subtree_control"); got != "" {
		t.Fatalf("root subtree_control changed without a hugetlb limit: %q", got)
	}
	if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "1GB", Limit: 0}}}); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, root, "cgroup.subtree_control"); got != "+hugetlb" {
		t.Fatalf("root subtree_control = %q", got)
	}
	if got := readBack(t, root, "pod/ctr/hugetlb.1GB.max"); got != "0" {
		t.Fatalf("hugetlb.1GB.max = %q", got)
	}
}

func TestV2OOMEventsFromMemoryEvents(t *testing.T) {
	root := fakeTree(t, map[string]string{"ctr/memory.events": "low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\n"})
	m, err := New("/ctr", WithLayout(Layout{Mode: ModeV2, Unified: root}), WithV2Controllers())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := m.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := filepath.Join(root, "ctr/memory.events")
	// A change of another counter is not an OOM.
	if err := os.WriteFile(ev, []byte("low 0\nhigh 0\nmax 4\noom 0\noom_kill 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("event without an OOM")
	case <-time.After(100 * time.Millisecond):
	}
	if err := os.WriteFile(ev, []byte("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no event after oom_kill rose")
	}
	if n, err := m.OOMKillCount(); err != nil || n != 1 {
		t.Fatalf("OOMKillCount = %d, %v", n, err)
	}
	cancel()
	for range ch {
	}
}

const v2MemoryStat = `anon 1048576
file 4194304
kernel 65536
file_mapped 8192
inactive_file 3145728
active_file 1048576
pgfault 1234
pgmajfault 5
`

const v1MemoryStat = `cache 100
rss 200
total_cache 4194304
total_rss 1048576
total_inactive_file 3145728
total_pgfault 1234
total_pgmajfault 5
mapped_file 4096
total_mapped_file 8192
hierarchical_memory_limit 67108864
hierarchical_memsw_limit 100663296
`

func TestStatsFromFixtures(t *testing.T) {
	v2 := fakeTree(t, map[string]string{
		"c/cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n",
		"c/memory.current":      "5242880\n",
		"c/memory.stat":         v2MemoryStat,
		"c/memory.max":          "67108864\n",
		"c/memory.swap.current": "4096\n",
		"c/memory.swap.max":     "max\n",
		"c/memory.events":       "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n",
		"c/memory.peak":         "9437184\n",
		"c/io.stat":             "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=0 dios=0\n",
		"c/pids.current":        "3\n",
		"c/pids.max":            "max\n",
	})
	v1 := fakeTree(t, map[string]string{
		"cpuacct/c/cpuacct.usage":              "1500000\n",
		"cpuacct/c/cpuacct.usage_user":         "1000000\n",
		"cpuacct/c/cpuacct.usage_sys":          "500000\n",
		"cpu/c/cpu.stat":                       "nr_periods 10\nnr_throttled 2\nthrottled_time 30000\n",
		"memory/c/memory.usage_in_bytes":       "5242880\n",
		"memory/c/memory.memsw.usage_in_bytes": "5246976\n",
		"memory/c/memory.stat":                 v1MemoryStat,
		"memory/c/memory.oom_control":          "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"memory/c/memory.failcnt":              "7\n",
		"memory/c/memory.max_usage_in_bytes":   "9437184\n",
		"memory/c/memory.kmem.usage_in_bytes":  "65536\n",
		// No bfq data (device on another scheduler): the throttle files count.
		"blkio/c/blkio.bfq.io_service_bytes_recursive":      "Total 0\n",
		"blkio/c/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\n253:1 Read 0\n253:1 Write 512\nTotal 12800\n",
		"blkio/c/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n253:1 Write 1\nTotal 4\n",
		"pids/c/pids.current":                               "3\n",
		"pids/c/pids.max":                                   "max\n",
	})
	want := Stats{
		CPU: CPUStats{UsageNanos: 1500000, UserNanos: 1000000, SystemNanos: 500000, Periods: 10, ThrottledPeriods: 2, ThrottledNanos: 30000},
		Memory: MemoryStats{Usage: 5242880, WorkingSet: 5242880 - 3145728, RSS: 1048576, Cache: 4194304, InactiveFile: 3145728,
			PageFaults: 1234, MajorPageFaults: 5, Limit: 67108864, Available: 67108864 - (5242880 - 3145728), SwapUsage: 4096, OOMKills: 1,
			MappedFile: 8192, KernelUsage: 65536, MaxUsage: 9437184, Failcnt: 7},
		Pids: PidsStats{Current: 3},
	}
	tests := []struct {
		name      string
		layout    Layout
		swapLimit uint64
	}{
		{name: "v2", layout: Layout{Mode: ModeV2, Unified: v2}},
		{name: "v1", layout: Layout{Mode: ModeV1, V1: map[string]string{
			"cpu": filepath.Join(v1, "cpu"), "cpuacct": filepath.Join(v1, "cpuacct"),
			"memory": filepath.Join(v1, "memory"), "pids": filepath.Join(v1, "pids"),
			"blkio": filepath.Join(v1, "blkio")}}, swapLimit: 100663296 - 67108864},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New("/c", WithLayout(tt.layout))
			if err != nil {
				t.Fatal(err)
			}
			st, err := m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			w := want
			w.Memory.SwapLimit = tt.swapLimit
			st.Timestamp, st.Hugetlb = time.Time{}, nil
			if st.CPU != w.CPU || st.Memory != w.Memory || st.Pids != w.Pids {
				t.Fatalf("stats\n got %+v\nwant %+v", *st, w)
			}
			wantIO := []BlkioDevice{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2},
				{Major: 253, Minor: 1, WriteBytes: 512, Writes: 1}}
			if !slices.Equal(st.Blkio, wantIO) {
				t.Fatalf("blkio\n got %+v\nwant %+v", st.Blkio, wantIO)
			}
		})
	}
}

func TestV1RefusesUnified(t *testing.T) {
	m, err := New("/c", WithLayout(Layout{Mode: ModeV1, V1: map[string]string{"pids": t.TempDir()}}))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Set(&specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}})
	if err == nil || !strings.Contains(err.Error(), "cgroup v2") {
		t.Fatalf("Set unified on v1 = %v", err)
	}
}

func TestV1SetWritesFiles(t *testing.T) {
	files := map[string]string{}
	for ctrl, fs := range map[string][]string{
		"cpu":     {"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us", "cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.idle"},
		"memory":  {"memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.kmem.tcp.limit_in_bytes", "memory.oom_control"},
		"blkio":   {"blkio.bfq.weight", "blkio.bfq.weight_device", "blkio.throttle.write_iops_device"},
		"hugetlb": {"hugetlb.2MB.limit_in_bytes"},
		"net_cls": {"net_cls.classid"},
	} {
		for _, f := range fs {
			files[ctrl+"/c/"+f] = "0"
		}
	}
	root := fakeTree(t, files)
	v1 := map[string]string{}
	for _, c := range []string{"cpu", "memory", "blkio", "hugetlb", "net_cls"} {
		v1[c] = filepath.Join(root, c)
	}
	m, err := New("/c", WithLayout(Layout{Mode: ModeV1, V1: v1}))
	if err != nil {
		t.Fatal(err)
	}
	dev := specs.LinuxBlockIODevice{Major: 8, Minor: 16}
	r := &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(2048)), Quota: ptr(int64(-5)), Period: ptr(uint64(50000)), Burst: ptr(uint64(7)),
			RealtimePeriod: ptr(uint64(1000)), RealtimeRuntime: ptr(int64(500)), Idle: ptr(int64(1))},
		// No memsw files: unlimited swap is satisfied, a swap limit is not.
		Memory:         &specs.LinuxMemory{Limit: ptr(int64(1 << 30)), Swap: ptr(int64(-1)), Reservation: ptr(int64(1 << 29)), KernelTCP: ptr(int64(1 << 20)), DisableOOMKiller: ptr(true)},
		BlockIO:        &specs.LinuxBlockIO{Weight: ptr(uint16(300)), WeightDevice: []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev, Weight: ptr(uint16(200))}}, ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 99}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}},
		Network:        &specs.LinuxNetwork{ClassID: ptr(uint32(0x100001))},
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, file, want string }{
		{"shares", "cpu/c/cpu.shares", "2048"},
		{"period", "cpu/c/cpu.cfs_period_us", "50000"},
		{"negative quota is unlimited", "cpu/c/cpu.cfs_quota_us", "-1"},
		{"burst", "cpu/c/cpu.cfs_burst_us", "7"},
		{"rt period", "cpu/c/cpu.rt_period_us", "1000"},
		{"rt runtime", "cpu/c/cpu.rt_runtime_us", "500"},
		{"idle", "cpu/c/cpu.idle", "1"},
		{"limit", "memory/c/memory.limit_in_bytes", "1073741824"},
		{"soft limit", "memory/c/memory.soft_limit_in_bytes", "536870912"},
		{"kernel tcp", "memory/c/memory.kmem.tcp.limit_in_bytes", "1048576"},
		{"oom killer off", "memory/c/memory.oom_control", "1"},
		{"bfq weight", "blkio/c/blkio.bfq.weight", "300"},
		{"bfq weight device", "blkio/c/blkio.bfq.weight_device", "8:16 200"},
		{"write iops", "blkio/c/blkio.throttle.write_iops_device", "8:16 99"},
		{"hugetlb", "hugetlb/c/hugetlb.2MB.limit_in_bytes", "2097152"},
		{"classid", "net_cls/c/net_cls.classid", "1048577"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readBack(t, root, tt.file); got != tt.want {
				t.Errorf("%s = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
	err = m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20)), Swap: ptr(int64(2 << 20))}})
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("swap limit without memsw = %v, want not implemented", err)
	}
}

// The CRI path (a StatsReader without Full) still reads the swap limit:
// swap_available_bytes needs it.
func TestFastReaderReadsSwapLimit(t *testing.T) {
	tests := []struct {
		name string
		max  string
		want uint64
	}{
		{name: "limited", max: "104857600\n", want: 104857600},
		{name: "unlimited", max: "max\n", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeTree(t, map[string]string{
				"c/memory.current":      "1000\n",
				"c/memory.swap.current": "10\n",
				"c/memory.swap.max":     tt.max,
			})
			m, err := New("/c", WithLayout(Layout{Mode: ModeV2, Unified: dir}))
			if err != nil {
				t.Fatal(err)
			}
			r := NewStatsReader()
			defer r.Close()
			st := make([]Stats, 1)
			if errs := r.ReadMany([]Manager{m}, st); errs != nil {
				t.Fatal(errs[0])
			}
			if st[0].Memory.SwapLimit != tt.want || st[0].Memory.SwapUsage != 10 {
				t.Fatalf("swap usage %d limit %d, want 10 and %d", st[0].Memory.SwapUsage, st[0].Memory.SwapLimit, tt.want)
			}
		})
	}
}
