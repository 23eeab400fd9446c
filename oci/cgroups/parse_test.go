package cgroups

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cri-server/cri-server/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseLayout(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		want      Mode
		wantV1    map[string]string
		unified   string
	}{
		{name: "hybrid with co-mount", mountinfo: hybridMountinfo, want: ModeHybrid, unified: "/sys/fs/cgroup/unified",
			wantV1: map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
				"cpuset": "/sys/fs/cgroup/cpuset", "memory": "/sys/fs/cgroup/memory", "name=systemd": "/sys/fs/cgroup/systemd"}},
		{name: "pure v2", want: ModeV2, unified: "/sys/fs/cgroup",
			mountinfo: "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"},
		{name: "pure v1", want: ModeV1, wantV1: map[string]string{"pids": "/sys/fs/cgroup/pids"},
			mountinfo: "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"},
		{name: "escaped mount point", want: ModeV1, wantV1: map[string]string{"memory": "/mnt/my cg"},
			mountinfo: `39 31 0:36 / /mnt/my\040cg rw - cgroup cgroup rw,memory` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseLayout(strings.NewReader(tt.mountinfo))
			if err != nil {
				t.Fatal(err)
			}
			if l.Mode != tt.want || l.Unified != tt.unified {
				t.Fatalf("mode %v unified %q, want %v %q", l.Mode, l.Unified, tt.want, tt.unified)
			}
			if len(l.V1) != len(tt.wantV1) {
				t.Fatalf("v1 %v, want %v", l.V1, tt.wantV1)
			}
			for k, v := range tt.wantV1 {
				if l.V1[k] != v {
					t.Errorf("v1[%s] = %q, want %q", k, l.V1[k], v)
				}
			}
		})
	}
	l, err := parseLayout(strings.NewReader(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	wantH := []Hierarchy{{"/sys/fs/cgroup/cpu,cpuacct", "cgroup", "cpu,cpuacct"}, {"/sys/fs/cgroup/cpuset", "cgroup", "cpuset"},
		{"/sys/fs/cgroup/memory", "cgroup", "memory"}, {"/sys/fs/cgroup/systemd", "cgroup", "xattr,name=systemd"},
		{"/sys/fs/cgroup/unified", "cgroup2", ""}}
	if !slices.Equal(l.Hierarchies, wantH) {
		t.Errorf("hierarchies %v, want %v", l.Hierarchies, wantH)
	}
	if _, err := parseLayout(strings.NewReader("")); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("no cgroups: %v", err)
	}
}

// DetectLayout stops at the last hierarchy /proc/self/cgroup counts; a
// count it cannot reach (a hierarchy mounted elsewhere) reads everything.
func TestParseLayoutUntil(t *testing.T) {
	late := hybridMountinfo + "90 23 0:41 / /late rw - cgroup cgroup rw,pids\n"
	tests := []struct {
		name     string
		want     int
		wantLate bool
	}{
		{name: "all hierarchies met early", want: 5, wantLate: false},
		{name: "unknown count", want: 0, wantLate: true},
		{name: "count beyond the mounts", want: 7, wantLate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseLayoutUntil(strings.NewReader(late), tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.V1["pids"] == "/late"; got != tt.wantLate {
				t.Errorf("read the late mount: %v, want %v (v1 %v)", got, tt.wantLate, l.V1)
			}
			if l.Mode != ModeHybrid || l.V1["memory"] != "/sys/fs/cgroup/memory" {
				t.Errorf("layout %+v", l)
			}
		})
	}
	if n := selfHierarchies(); n == 0 {
		t.Error("no hierarchy counted in /proc/self/cgroup")
	}
}

// The v2 hierarchy is not waited for where no cgroup2 is mounted at its
// usual places: /proc/self/cgroup lists it once mounted anywhere.
func TestHierarchiesToWaitFor(t *testing.T) {
	hybrid := "9:name=systemd:/\n4:memory:/x\n1:cpu:/\n0::/\n"
	tests := []struct {
		name      string
		cgroup    string
		v2Mounted bool
		want      int
	}{
		{name: "hybrid, unified mounted", cgroup: hybrid, v2Mounted: true, want: 4},
		{name: "hybrid, unified unmounted here", cgroup: hybrid, want: 3},
		{name: "pure v2", cgroup: "0::/user.slice\n", v2Mounted: true, want: 1},
		{name: "v2 line alone, mounted elsewhere", cgroup: "0::/\n", want: 1},
		{name: "v1 only", cgroup: "2:memory:/\n1:cpu:/\n", want: 2},
		{name: "unreadable", cgroup: "", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hierarchiesToWaitFor([]byte(tt.cgroup), func() bool { return tt.v2Mounted }); got != tt.want {
				t.Errorf("wait for %d hierarchies, want %d", got, tt.want)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "cgroupfs", in: "/kubepods/pod123/ctr", want: "/kubepods/pod123/ctr"},
		{name: "relative is from the root", in: "kubepods/x", want: "/kubepods/x"},
		{name: "cleaned", in: "/a//b/./c/", want: "/a/b/c"},
		{name: "dotdot refused", in: "/a/../../etc", wantErr: true},
		{name: "root refused", in: "/", wantErr: true},
		{name: "empty refused", in: "", wantErr: true},
		{name: "systemd scope", in: "kubepods-besteffort-pod1.slice:cri-server:abc",
			want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-server-abc.scope"},
		{name: "systemd pod slice", in: "kubepods-burstable.slice::kubepods-burstable-pod2.slice",
			want: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2.slice"},
		{name: "systemd root slice", in: "-.slice:p:n", want: "/p-n.scope"},
		{name: "systemd no prefix", in: "system.slice::n", want: "/system.slice/n.scope"},
		{name: "systemd bad slice", in: "kubepods--x.slice:p:n", wantErr: true},
		{name: "systemd slice without suffix", in: "kubepods:p:n", wantErr: true},
		{name: "systemd slash in name", in: "a.slice:p:../x", wantErr: true},
		{name: "systemd empty name", in: "a.slice:p:", wantErr: true},
		{name: "one colon", in: "a:b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParsePath(%q) = %q, %v; want invalid argument", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestConversions(t *testing.T) {
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"shares min", SharesToWeight(2), uint64(1)},
		{"shares default", SharesToWeight(1024), uint64(39)},
		{"shares max", SharesToWeight(262144), uint64(10000)},
		{"shares below min clamps", SharesToWeight(1), uint64(1)},
		{"shares unset", SharesToWeight(0), uint64(0)},
		{"blkio min", BlkioWeightToIOWeight(10), uint64(1)},
		{"blkio default", BlkioWeightToIOWeight(500), uint64(4950)},
		{"blkio max", BlkioWeightToIOWeight(1000), uint64(10000)},
		{"cpu.max quota+period", cpuMax(ptr(int64(50000)), ptr(uint64(100000))), "50000 100000"},
		{"cpu.max default period", cpuMax(ptr(int64(20000)), nil), "20000 100000"},
		{"cpu.max unlimited", cpuMax(ptr(int64(-1)), ptr(uint64(50000))), "max 50000"},
		{"cpu.max period only", cpuMax(nil, ptr(uint64(50000))), "max 50000"},
		{"cpu.max nothing", cpuMax(nil, nil), ""},
		{"page size 2MB", checkPageSize("2MB") == nil, true},
		{"page size path", checkPageSize("../2MB") == nil, false},
		{"page size 1GB", checkPageSize("1GB") == nil, true},
		{"page size 64KB", checkPageSize("64KB") == nil, true},
		{"page size no number", checkPageSize("MB") == nil, false},
		{"page size bad unit", checkPageSize("2XB") == nil, false},
		{"unified oom group", checkUnifiedKey("memory.oom.group") == nil, true},
		{"unified io.max", checkUnifiedKey("io.max") == nil, true},
		{"unified upper case", checkUnifiedKey("Memory.max") == nil, false},
		{"unified dotdot", checkUnifiedKey("memory..max") == nil, false},
		{"unified leading dot", checkUnifiedKey(".max") == nil, false},
		{"unified trailing dot only", checkUnifiedKey("memory.") == nil, false},
		{"unified slash", checkUnifiedKey("memory.max/x") == nil, false},
		{"unified kill", checkUnifiedKey("cgroup.kill") == nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestSwapV2(t *testing.T) {
	tests := []struct {
		name      string
		swap, mem *int64
		want      int64
		ok        bool
		wantErr   bool
	}{
		{name: "mem+swap to swap", swap: ptr(int64(300)), mem: ptr(int64(100)), want: 200, ok: true},
		{name: "equal means no swap", swap: ptr(int64(100)), mem: ptr(int64(100)), want: 0, ok: true},
		{name: "unlimited", swap: ptr(int64(-1)), mem: ptr(int64(100)), want: -1, ok: true},
		{name: "unlimited memory implies unlimited swap", mem: ptr(int64(-1)), want: -1, ok: true},
		{name: "unset", mem: ptr(int64(100))},
		{name: "swap below memory", swap: ptr(int64(50)), mem: ptr(int64(100)), wantErr: true},
		{name: "swap without memory", swap: ptr(int64(50)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := swapV2(tt.swap, tt.mem)
			if (err != nil) != tt.wantErr || got != tt.want || ok != tt.ok {
				t.Fatalf("swapV2 = %d %v %v, want %d %v err=%v", got, ok, err, tt.want, tt.ok, tt.wantErr)
			}
		})
	}
}

func TestDeviceRuleV1(t *testing.T) {
	tests := []struct {
		name    string
		rule    specs.LinuxDeviceCgroup
		want    string
		wantErr bool
	}{
		{name: "deny all", rule: specs.LinuxDeviceCgroup{Access: "rwm"}, want: "a *:* rwm"},
		{name: "char dev", rule: specs.LinuxDeviceCgroup{Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"}, want: "c 1:3 rw"},
		{name: "wildcard minor", rule: specs.LinuxDeviceCgroup{Type: "b", Major: ptr(int64(8))}, want: "b 8:* rwm"},
		{name: "bad type", rule: specs.LinuxDeviceCgroup{Type: "x"}, wantErr: true},
		{name: "bad access", rule: specs.LinuxDeviceCgroup{Type: "c", Access: "rx"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deviceRuleV1(tt.rule)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %q, %v; want %q err=%v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// BenchmarkParseLayout: a node's mountinfo, the hierarchies first (mounted
// at boot), then 1000 container mounts; whole versus up to the last
// hierarchy, as DetectLayout reads it.
func BenchmarkParseLayout(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(hybridMountinfo)
	for i := range 1000 {
		fmt.Fprintf(&sb, "%d 27 0:%d / /var/lib/cri-server/rootfs/%064d rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n", 100+i, 100+i, i)
	}
	mi := sb.String()
	for _, bc := range []struct {
		name string
		want int
	}{{"whole", 0}, {"until_last_hierarchy", 5}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := parseLayoutUntil(strings.NewReader(mi), bc.want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
