package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
)

// The v1 limits TestSetReadsBack leaves out, each read back from the
// kernel's file on this host's layout (skipped where the kernel lacks it).
func TestSetReadsBackMore(t *testing.T) {
	loop := ""
	if b, err := os.ReadFile("/sys/block/loop0/dev"); err == nil {
		loop = strings.TrimSpace(string(b))
	}
	tests := []struct {
		name, ctrl, file string
		res              specs.LinuxResources
		want             string
		needs            string // a device the case needs
	}{
		{name: "cpu burst", ctrl: "cpu", file: "cpu.cfs_burst_us",
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Burst: ptr(uint64(20000))}}, want: "20000"},
		{name: "cpu idle", ctrl: "cpu", file: "cpu.idle", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Idle: ptr(int64(1))}}, want: "1"},
		{name: "cpu realtime period", ctrl: "cpu", file: "cpu.rt_period_us",
			res: specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimePeriod: ptr(uint64(500000))}}, want: "500000"},
		{name: "memory disable OOM killer", ctrl: "memory", file: "memory.oom_control",
			res: specs.LinuxResources{Memory: &specs.LinuxMemory{DisableOOMKiller: ptr(true)}}, want: "oom_kill_disable 1"},
		{name: "blkio throttle read bps", ctrl: "blkio", file: "blkio.throttle.read_bps_device", needs: loop,
			res:  specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 7, Minor: 0}, Rate: 1 << 20}}}},
			want: "7:0 1048576"},
		{name: "blkio throttle write iops", ctrl: "blkio", file: "blkio.throttle.write_iops_device", needs: loop,
			res:  specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 7, Minor: 0}, Rate: 100}}}},
			want: "7:0 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needs == "" && strings.HasPrefix(tt.name, "blkio") {
				t.Skip("no loop0 block device")
			}
			m := hostManager(t)
			if err := m.Apply(0); err != nil {
				t.Fatal(err)
			}
			d, ok := m.Paths()[tt.ctrl]
			if !ok {
				t.Skipf("no %s hierarchy", tt.ctrl)
			}
			if _, err := os.Stat(filepath.Join(d, tt.file)); err != nil {
				t.Skipf("kernel lacks %s", tt.file)
			}
			if err := m.Set(&tt.res); err != nil {
				t.Fatal(err)
			}
			if got := readBack(t, d, tt.file); !strings.Contains(got, tt.want) {
				t.Errorf("%s = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}

// A v1 limit the kernel refuses is a typed error, and the cgroup stays
// usable.
func TestSetRefusedIsTyped(t *testing.T) {
	tests := []struct {
		name  string
		res   specs.LinuxResources
		class error
	}{
		{name: "cpuset cpus out of range", res: specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "4096"}}, class: errdefs.ErrInvalidArgument},
		{name: "swap below memory", res: specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(32 << 20))}}, class: errdefs.ErrInvalidArgument},
		{name: "hugetlb page size unknown", res: specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 1}}}, class: errdefs.ErrInvalidArgument},
		{name: "device rule with a bad type", res: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "q", Access: "r"}}}, class: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t)
			if err := m.Apply(0); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&tt.res); !errors.Is(err, tt.class) {
				t.Errorf("Set: %v, want %v", err, tt.class)
			}
			if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(7))}}); err != nil {
				t.Errorf("a good Set after the refused one: %v", err)
			}
		})
	}
}
