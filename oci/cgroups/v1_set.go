package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func (m *v1Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if len(r.Unified) > 0 && m.unified == nil {
		return errInvalid("linux.resources.unified needs cgroup v2; this host has only v1")
	}
	for _, set := range []func(*specs.LinuxResources) error{
		m.setCPU, m.setCpuset, m.setMemory, m.setPids, m.setBlkio, m.setHugetlb, m.setDevices, m.setNetwork, m.setRdma,
	} {
		if err := set(r); err != nil {
			return fmt.Errorf("set cgroup %s: %w", m.path, err)
		}
	}
	if m.unified != nil {
		hr := &specs.LinuxResources{Unified: r.Unified}
		if _, v1Has := m.dirs["hugetlb"]; !v1Has {
			hr.HugepageLimits = r.HugepageLimits
		}
		return m.unified.Set(hr)
	}
	return nil
}

// dir returns the directory of ctrl, or "" when the hierarchy is not
// mounted: a limit for an absent controller is skipped (runc 1.1 refuses
// it; see needDir for the controllers where we do too).
func (m *v1Manager) dir(ctrl string) string {
	d, ok := m.dirs[ctrl]
	if !ok {
		m.log.Debug("cgroup v1 controller not mounted, limit skipped", "controller", ctrl, "cgroup", m.path)
	}
	return d
}

func (m *v1Manager) setCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	d := m.dir("cpu")
	if d == "" {
		return nil
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(d, "cpu.shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
			return err
		}
	}
	if c.Period != nil && *c.Period != 0 {
		// The kernel rejects a period for which the current quota gives
		// more than the parent allows; writing the quota first fixes it.
		if err := writeFile(d, "cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10)); err != nil {
			if !errors.Is(err, unix.EINVAL) || c.Quota == nil {
				return err
			}
			if err := writeFile(d, "cpu.cfs_quota_us", strconv.FormatInt(*c.Quota, 10)); err != nil {
				return err
			}
			if err := writeFile(d, "cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10)); err != nil {
				return err
			}
		}
	}
	if c.Quota != nil && *c.Quota != 0 {
		q := *c.Quota
		if q < 0 {
			q = -1
		}
		if err := writeFile(d, "cpu.cfs_quota_us", strconv.FormatInt(q, 10)); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeFile(d, "cpu.cfs_burst_us", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		if err := writeFile(d, "cpu.rt_period_us", strconv.FormatUint(*c.RealtimePeriod, 10)); err != nil {
			return err
		}
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		if err := writeFile(d, "cpu.rt_runtime_us", strconv.FormatInt(*c.RealtimeRuntime, 10)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		return writeFile(d, "cpu.idle", strconv.FormatInt(*c.Idle, 10))
	}
	return nil
}

func (m *v1Manager) setCpuset(r *specs.LinuxResources) error {
	if r.CPU == nil || (r.CPU.Cpus == "" && r.CPU.Mems == "") {
		return nil
	}
	d := m.dir("cpuset")
	if d == "" {
		return nil
	}
	if r.CPU.Cpus != "" {
		if err := writeFile(d, "cpuset.cpus", r.CPU.Cpus); err != nil {
			return err
		}
	}
	if r.CPU.Mems != "" {
		return writeFile(d, "cpuset.mems", r.CPU.Mems)
	}
	return nil
}

func (m *v1Manager) setMemory(r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil {
		return nil
	}
	d := m.dir("memory")
	if d == "" {
		return nil
	}
	if err := setMemoryLimitsV1(d, mem); err != nil {
		return err
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := writeFile(d, "memory.soft_limit_in_bytes", strconv.FormatInt(*mem.Reservation, 10)); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil {
		if *mem.Swappiness > 100 {
			return errInvalid("memory.swappiness %d: want 0..100", *mem.Swappiness)
		}
		if err := writeFile(d, "memory.swappiness", strconv.FormatUint(*mem.Swappiness, 10)); err != nil {
			return err
		}
	}
	if mem.KernelTCP != nil && *mem.KernelTCP != 0 {
		if err := writeFile(d, "memory.kmem.tcp.limit_in_bytes", strconv.FormatInt(*mem.KernelTCP, 10)); err != nil {
			return err
		}
	}
	if mem.Kernel != nil && *mem.Kernel != 0 {
		// Linux 5.16 removed kmem limits; runc ignores them too.
		m.log.Debug("memory.kernel limit ignored (removed from the kernel)", "cgroup", m.path)
	}
	if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
		return writeFile(d, "memory.oom_control", "1")
	}
	return nil
}

// setMemoryLimitsV1 writes memory.limit_in_bytes and memory.memsw.limit_in_bytes
// in the order the kernel accepts: memsw must stay >= limit at every step.
func setMemoryLimitsV1(d string, mem *specs.LinuxMemory) error {
	var limit, swap int64
	if mem.Limit != nil {
		limit = *mem.Limit
	}
	if mem.Swap != nil {
		swap = *mem.Swap
	}
	if limit == -1 && swap == 0 {
		swap = -1 // unlimited memory without swap value: memory+swap unlimited too
	}
	hasMemsw := fileExists(filepath.Join(d, "memory.memsw.limit_in_bytes"))
	if swap != 0 && !hasMemsw {
		if swap == -1 {
			swap = 0
		} else {
			return errUnsupported("memory.swap needs swap accounting (memory.memsw.* missing)")
		}
	}
	if swap > 0 && limit > 0 && swap < limit {
		return errInvalid("memory.swap %d (memory+swap) is below memory.limit %d", swap, limit)
	}
	writeLimit := func() error {
		if limit == 0 {
			return nil
		}
		return writeFile(d, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	}
	writeSwap := func() error {
		if swap == 0 {
			return nil
		}
		return writeFile(d, "memory.memsw.limit_in_bytes", strconv.FormatInt(swap, 10))
	}
	// Raising: memsw first. Lowering: limit first.
	cur, err := readUint(d, "memory.limit_in_bytes")
	if err != nil {
		return err
	}
	if swap == -1 || (swap > 0 && uint64(swap) > cur) {
		if err := writeSwap(); err != nil {
			return err
		}
		return writeLimit()
	}
	if err := writeLimit(); err != nil {
		return err
	}
	return writeSwap()
}

func (m *v1Manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	d := m.dir("pids")
	if d == "" {
		return nil
	}
	l := *r.Pids.Limit
	if l <= 0 {
		l = -1
	}
	return writeFile(d, "pids.max", maxOr(l))
}

func (m *v1Manager) setBlkio(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	d := m.dir("blkio")
	if d == "" {
		return nil
	}
	// CFQ's blkio.weight is gone since 5.0; BFQ has blkio.bfq.weight.
	prefix := "blkio."
	if !fileExists(filepath.Join(d, "blkio.weight")) && fileExists(filepath.Join(d, "blkio.bfq.weight")) {
		prefix = "blkio.bfq."
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := writeFile(d, prefix+"weight", strconv.FormatUint(uint64(*b.Weight), 10)); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeFile(d, prefix+"leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil {
			if err := writeFile(d, prefix+"weight_device", fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.Weight)); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, dev := range t.devs {
			if err := writeFile(d, t.file, fmt.Sprintf("%d:%d %d", dev.Major, dev.Minor, dev.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v1Manager) setHugetlb(r *specs.LinuxResources) error {
	d, ok := m.dirs["hugetlb"]
	if !ok || len(r.HugepageLimits) == 0 {
		return nil // hybrid: the unified helper writes them
	}
	for _, h := range r.HugepageLimits {
		if err := checkPageSize(h.Pagesize); err != nil {
			return err
		}
		if err := writeFile(d, "hugetlb."+h.Pagesize+".limit_in_bytes", strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	return nil
}

// setDevices replays the rules in order; the kernel's v1 devices
// controller has the same last-rule-wins semantics as the spec.
func (m *v1Manager) setDevices(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	d := m.dir("devices")
	if d == "" {
		return nil
	}
	for _, dev := range r.Devices {
		rule, err := deviceRuleV1(dev)
		if err != nil {
			return err
		}
		file := "devices.deny"
		if dev.Allow {
			file = "devices.allow"
		}
		if err := writeFile(d, file, rule); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1Manager) setNetwork(r *specs.LinuxResources) error {
	if r.Network == nil {
		return nil
	}
	if r.Network.ClassID != nil {
		d, err := m.needDir("net_cls", "linux.resources.network.classID")
		if err != nil {
			return err
		}
		if err := writeFile(d, "net_cls.classid", strconv.FormatUint(uint64(*r.Network.ClassID), 10)); err != nil {
			return err
		}
	}
	if len(r.Network.Priorities) > 0 {
		d, err := m.needDir("net_prio", "linux.resources.network.priorities")
		if err != nil {
			return err
		}
		for _, p := range r.Network.Priorities {
			if err := writeFile(d, "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return err
			}
		}
	}
	return nil
}

// needDir is dir for a limit nothing else can carry out: the network and
// rdma controllers have no v2 fallback and the kubelet never asks for them,
// so a limit without its hierarchy is refused, naming the field, rather
// than dropped (runc 1.1: "cannot set net_cls limit"; crun fails too).
func (m *v1Manager) needDir(ctrl, field string) (string, error) {
	d, ok := m.dirs[ctrl]
	if !ok {
		return "", errUnsupported("%s: no %s cgroup hierarchy on this host", field, ctrl)
	}
	return d, nil
}

func (m *v1Manager) setRdma(r *specs.LinuxResources) error {
	if len(r.Rdma) == 0 {
		return nil
	}
	d, err := m.needDir("rdma", "linux.resources.rdma")
	if err != nil {
		return err
	}
	return writeRdma(d, r.Rdma)
}
