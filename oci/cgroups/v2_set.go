package cgroups

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func (m *v2Manager) setCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(m.dir, "cpu.weight", strconv.FormatUint(SharesToWeight(*c.Shares), 10)); err != nil {
			return err
		}
	}
	if v := cpuMax(c.Quota, c.Period); v != "" {
		if err := writeFile(m.dir, "cpu.max", v); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeFile(m.dir, "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := writeFile(m.dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	if (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) {
		return errUnsupported("cpu.realtimeRuntime/realtimePeriod are not supported by cgroup v2")
	}
	return nil
}

func (m *v2Manager) setCpuset(r *specs.LinuxResources) error {
	if r.CPU == nil {
		return nil
	}
	if r.CPU.Cpus != "" {
		if err := writeFile(m.dir, "cpuset.cpus", r.CPU.Cpus); err != nil {
			return err
		}
	}
	if r.CPU.Mems != "" {
		return writeFile(m.dir, "cpuset.mems", r.CPU.Mems)
	}
	return nil
}

func (m *v2Manager) setMemory(r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil {
		return nil
	}
	swap, ok, err := swapV2(mem.Swap, mem.Limit)
	if err != nil {
		return err
	}
	if ok {
		// memory.swap.max only exists with swap accounting; a request for
		// unlimited swap on a host without it is already satisfied.
		if err := writeFile(m.dir, "memory.swap.max", maxOr(swap)); err != nil && (swap != -1 || fileExists(filepath.Join(m.dir, "memory.swap.max"))) {
			return err
		}
	}
	if mem.Limit != nil && *mem.Limit != 0 {
		if err := writeFile(m.dir, "memory.max", maxOr(*mem.Limit)); err != nil {
			return err
		}
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := writeFile(m.dir, "memory.low", maxOr(*mem.Reservation)); err != nil {
			return err
		}
	}
	// swappiness, kernel and kernelTCP limits and disableOOMKiller have no
	// v2 files; runc ignores them too rather than fail every v1-era spec.
	if mem.Swappiness != nil || mem.KernelTCP != nil || mem.DisableOOMKiller != nil {
		m.log.Debug("cgroup v2 ignores swappiness, kernelTCP and disableOOMKiller", "cgroup", m.dir)
	}
	return nil
}

func (m *v2Manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	l := *r.Pids.Limit
	if l <= 0 {
		l = -1
	}
	return writeFile(m.dir, "pids.max", maxOr(l))
}

func (m *v2Manager) setIO(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	// io.weight is the generic knob; with the BFQ scheduler only
	// io.bfq.weight exists, and it keeps v1's 1..1000 scale.
	weight := func(dev string, w uint16) error {
		if fileExists(filepath.Join(m.dir, "io.weight")) {
			return writeFile(m.dir, "io.weight", dev+strconv.FormatUint(BlkioWeightToIOWeight(w), 10))
		}
		return writeFile(m.dir, "io.bfq.weight", dev+strconv.FormatUint(uint64(w), 10))
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := weight("default ", *b.Weight); err != nil {
			return err
		}
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			if err := weight(fmt.Sprintf("%d:%d ", d.Major, d.Minor), *d.Weight); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice}, {"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice}, {"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			rate := "max"
			if d.Rate != 0 {
				rate = strconv.FormatUint(d.Rate, 10)
			}
			if err := writeFile(m.dir, "io.max", fmt.Sprintf("%d:%d %s=%s", d.Major, d.Minor, t.key, rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2Manager) setHugetlb(r *specs.LinuxResources) error {
	for _, h := range r.HugepageLimits {
		if err := checkPageSize(h.Pagesize); err != nil {
			return err
		}
		if !hugePageSizeExists(h.Pagesize) {
			return errInvalid("hugepageLimits pageSize %s: not a huge page size of this kernel", h.Pagesize)
		}
		v := strconv.FormatUint(h.Limit, 10)
		if err := writeFile(m.dir, "hugetlb."+h.Pagesize+".max", v); err != nil {
			return err
		}
		// Reservations are charged separately; limit them the same so a
		// mmap cannot reserve past the limit (runc does the same).
		rsvd := "hugetlb." + h.Pagesize + ".rsvd.max"
		if fileExists(filepath.Join(m.dir, rsvd)) {
			if err := writeFile(m.dir, rsvd, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2Manager) setUnified(r *specs.LinuxResources) error {
	for k, v := range r.Unified {
		if err := checkUnifiedKey(k); err != nil {
			return err
		}
		if !fileExists(filepath.Join(m.dir, k)) {
			return errInvalid("unified key %q: no such file in %s (controller not enabled here?)", k, m.dir)
		}
		if err := writeFile(m.dir, k, v); err != nil {
			return fmt.Errorf("unified key %q: %w", k, err)
		}
	}
	return nil
}

func (m *v2Manager) setRdma(r *specs.LinuxResources) error { return writeRdma(m.dir, r.Rdma) }

// writeRdma writes one rdma.max line per device: "mlx4_0 hca_handle=2 hca_object=max".
func writeRdma(dir string, rdma map[string]specs.LinuxRdma) error {
	for dev, l := range rdma {
		if dev == "" || strings.ContainsAny(dev, " \n=") {
			return errInvalid("rdma device name %q is invalid", dev)
		}
		line := dev
		if l.HcaHandles != nil {
			line += " hca_handle=" + strconv.FormatUint(uint64(*l.HcaHandles), 10)
		}
		if l.HcaObjects != nil {
			line += " hca_object=" + strconv.FormatUint(uint64(*l.HcaObjects), 10)
		}
		if line == dev {
			continue
		}
		if err := writeFile(dir, "rdma.max", line); err != nil {
			return err
		}
	}
	return nil
}

// hugePageSizeExists says whether the kernel has huge pages of size (as
// checkPageSize accepts it), from /sys/kernel/mm/hugepages. Without that
// directory it cannot tell and says yes: the write then fails on its own.
func hugePageSizeExists(size string) bool {
	const dir = "/sys/kernel/mm/hugepages"
	if !fileExists(dir) {
		return true
	}
	num := size[:len(size)-2]
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return true
	}
	kb := n << map[byte]uint{'K': 0, 'M': 10, 'G': 20}[size[len(size)-2]]
	return fileExists(filepath.Join(dir, "hugepages-"+strconv.FormatUint(kb, 10)+"kB"))
}
