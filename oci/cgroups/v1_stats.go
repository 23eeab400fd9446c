package cgroups

import "fmt"

// readStats reads v1 counters: cpuacct, memory, pids; with r.Full also cpu
// throttling, user/system time, limits, OOM kills and hugetlb.
func (m *v1Manager) readStats(r *StatsReader, s *Stats) error {
	var err error
	if d, ok := m.dirs["cpuacct"]; ok {
		if s.CPU.UsageNanos, err = r.readUint(d, "cpuacct.usage"); err != nil {
			return err
		}
		if r.Full {
			if s.CPU.UserNanos, err = r.readUint(d, "cpuacct.usage_user"); err != nil {
				return err
			}
			if s.CPU.SystemNanos, err = r.readUint(d, "cpuacct.usage_sys"); err != nil {
				return err
			}
		}
	}
	if d, ok := m.dirs["memory"]; ok {
		if err := r.readMemoryV1(d, s); err != nil {
			return err
		}
	}
	if d, ok := m.dirs["pids"]; ok {
		if s.Pids.Current, err = r.readUint(d, "pids.current"); err != nil {
			return err
		}
		if r.Full {
			if s.Pids.Limit, err = r.readUint(d, "pids.max"); err != nil {
				return err
			}
			s.Pids.Limit = limit(s.Pids.Limit)
		}
	}
	if !r.Full {
		return nil
	}
	if err := m.readFullV1(r, s); err != nil {
		return err
	}
	if d, ok := m.dirs["cpu"]; ok {
		if ok, err := r.read(d, "cpu.stat"); err != nil {
			return err
		} else if ok {
			c := &s.CPU
			eachKV(r.buf, func(k []byte, v uint64) {
				switch string(k) {
				case "nr_periods":
					c.Periods = v
				case "nr_throttled":
					c.ThrottledPeriods = v
				case "throttled_time":
					c.ThrottledNanos = v
				}
			})
		}
	}
	if d, ok := m.dirs["hugetlb"]; ok {
		return r.readHugetlbV1(d, s)
	}
	if m.unified != nil {
		return m.unified.readStats(r, s)
	}
	return nil
}

func (r *StatsReader) readMemoryV1(d string, s *Stats) error {
	mem := &s.Memory
	var err error
	if mem.Usage, err = r.readUint(d, "memory.usage_in_bytes"); err != nil {
		return err
	}
	// memory.stat's total_* and hierarchical_* values include
	// descendants and the ancestors' limits: one file instead of three.
	ok, err := r.read(d, "memory.stat")
	if err != nil {
		return err
	}
	if ok {
		eachKV(r.buf, func(k []byte, v uint64) {
			switch string(k) {
			case "total_rss":
				mem.RSS = v
			case "total_cache":
				mem.Cache = v
			case "total_inactive_file":
				mem.InactiveFile = v
			case "total_pgfault":
				mem.PageFaults = v
			case "total_pgmajfault":
				mem.MajorPageFaults = v
			case "hierarchical_memory_limit":
				mem.Limit = v
			case "hierarchical_memsw_limit":
				mem.SwapLimit = v
			case "total_mapped_file":
				mem.MappedFile = v
			}
		})
	}
	memsw, err := r.readUint(d, "memory.memsw.usage_in_bytes")
	if err != nil {
		return err
	}
	if memsw > mem.Usage {
		mem.SwapUsage = memsw - mem.Usage
	}
	if r.Full {
		if err := r.readMemoryFullV1(d, mem); err != nil {
			return err
		}
		if ok, err := r.read(d, "memory.oom_control"); err != nil {
			return err
		} else if ok {
			eachKV(r.buf, func(k []byte, v uint64) {
				if string(k) == "oom_kill" {
					mem.OOMKills = v
				}
			})
		}
	}
	// v1's memsw limit is memory+swap; report swap alone like v2.
	if l := limit(mem.SwapLimit); l != 0 && limit(mem.Limit) != 0 && l >= mem.Limit {
		mem.SwapLimit = l - mem.Limit
	}
	mem.finish()
	return nil
}

func (r *StatsReader) readHugetlbV1(d string, s *Stats) error {
	for _, size := range hugePageSizes() {
		var h HugetlbStats
		var err error
		if h.Usage, err = r.readUint(d, size.v1Usage); err != nil {
			return fmt.Errorf("read hugetlb: %w", err)
		}
		if h.MaxUsage, err = r.readUint(d, size.v1Max); err != nil {
			return err
		}
		if h.Failcnt, err = r.readUint(d, size.v1Failcnt); err != nil {
			return err
		}
		if s.Hugetlb == nil {
			s.Hugetlb = map[string]HugetlbStats{}
		}
		s.Hugetlb[size.name] = h
	}
	return nil
}

// readMemoryFullV1 reads the counters only metrics export.
func (r *StatsReader) readMemoryFullV1(d string, mem *MemoryStats) error {
	var err error
	if mem.Failcnt, err = r.readUint(d, "memory.failcnt"); err != nil {
		return err
	}
	if mem.MaxUsage, err = r.readUint(d, "memory.max_usage_in_bytes"); err != nil {
		return err
	}
	mem.KernelUsage, err = r.readUint(d, "memory.kmem.usage_in_bytes")
	return err
}

// readFullV1 reads processes and block I/O. cgroup.procs is the same in
// every hierarchy a container joined: the first one present is read.
func (m *v1Manager) readFullV1(r *StatsReader, s *Stats) error {
	for _, c := range []string{"pids", "memory", "cpu", "cpuacct"} {
		if d, ok := m.dirs[c]; ok {
			if err := r.readProcs(d, s); err != nil {
				return err
			}
			break
		}
	}
	if d, ok := m.dirs["blkio"]; ok {
		return r.readBlkioV1(d, s)
	}
	return nil
}
