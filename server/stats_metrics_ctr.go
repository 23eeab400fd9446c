package server

import (
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci/cgroups"
)

// The series cAdvisor takes from a container's spec, its filesystem and
// its block devices rather than from cgroup counters.

// Kernel defaults a cgroup shows when the CRI left a value unset: what
// cAdvisor, reading the cgroup files, would report.
const (
	defaultCPUPeriod = 100000
	defaultCPUShares = 1024
)

// fsInfo is the filesystem holding a writable layer.
type fsInfo struct {
	device     string
	limit      uint64 // capacity in bytes, cAdvisor's fs limit
	inodesFree uint64
}

// statFsLocked reads the filesystem at mount. Preconditions: c.mu held.
func (c *statsCollector) statFsLocked(mount string) (fsInfo, bool) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(mount, &sfs); err != nil {
		return fsInfo{}, false
	}
	fi := fsInfo{device: mount, limit: sfs.Blocks * uint64(sfs.Bsize), inodesFree: sfs.Ffree}
	var st unix.Stat_t
	if unix.Stat(mount, &st) == nil {
		if d := c.devNameLocked(unix.Major(st.Dev), unix.Minor(st.Dev)); d != "" {
			fi.device = d
		}
	}
	return fi, true
}

// devNameLocked names a block device "/dev/<name>" as cAdvisor's device
// labels do, or "" when major:minor is no block device (overlay, tmpfs).
// Preconditions: c.mu held.
func (c *statsCollector) devNameLocked(major, minor uint32) string {
	key := uint64(major)<<32 | uint64(minor)
	if n, ok := c.devNames[key]; ok {
		return n
	}
	n := ""
	if l, err := os.Readlink("/sys/dev/block/" + devNum(major, minor)); err == nil {
		n = "/dev/" + filepath.Base(l)
	}
	c.devNames[key] = n
	return n
}

func devNum(major, minor uint32) string {
	return strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
}

// fullCgroupMetrics adds what a Full read adds beyond cgroupMetrics.
// Preconditions: c.mu held.
func (c *statsCollector) fullCgroupMetricsLocked(m *metricSink, st *cgroups.Stats) {
	mem := &st.Memory
	m.add("container_memory_failcnt", mem.Failcnt)
	m.add("container_memory_kernel_usage", mem.KernelUsage)
	m.add("container_memory_mapped_file", mem.MappedFile)
	m.add("container_memory_max_usage_bytes", mem.MaxUsage)
	m.add("container_processes", st.Procs.Processes)
	m.add("container_file_descriptors", st.Procs.FDs)
	m.add("container_sockets", st.Procs.Sockets)
	for _, d := range st.Blkio {
		dev := c.devNameLocked(d.Major, d.Minor)
		if dev == "" {
			dev = devNum(d.Major, d.Minor)
		}
		major, minor := strconv.FormatUint(uint64(d.Major), 10), strconv.FormatUint(uint64(d.Minor), 10)
		m.add("container_blkio_device_usage_total", d.ReadBytes, dev, major, minor, "Read")
		m.add("container_blkio_device_usage_total", d.WriteBytes, dev, major, minor, "Write")
		m.add("container_fs_reads_bytes_total", d.ReadBytes, dev)
		m.add("container_fs_writes_bytes_total", d.WriteBytes, dev)
		m.add("container_fs_reads_total", d.Reads, dev)
		m.add("container_fs_writes_total", d.Writes, dev)
	}
}

// specMetrics reports the limits the container was given (updated by
// UpdateContainerResources), as cAdvisor reads them back from the cgroup.
func specMetrics(m *metricSink, res *runtime.LinuxContainerResources) {
	period, shares := uint64(defaultCPUPeriod), uint64(defaultCPUShares)
	if p := res.GetCpuPeriod(); p > 0 {
		period = uint64(p)
	}
	if s := res.GetCpuShares(); s > 0 {
		shares = uint64(s)
	}
	m.add("container_spec_cpu_period", period)
	m.add("container_spec_cpu_shares", shares)
	// cAdvisor has no quota series for an unlimited container.
	if q := res.GetCpuQuota(); q > 0 {
		m.add("container_spec_cpu_quota", uint64(q))
	}
	// Memory plus swap, as the CRI and v1's memsw limit count it; 0 is
	// unlimited like container_spec_memory_limit_bytes.
	m.add("container_spec_memory_swap_limit_bytes", uint64(max(res.GetMemorySwapLimitInBytes(), 0)))
}

// startTime is when the container started, or was created if it has not.
func startTime(st *containerStatus) time.Time {
	if !st.StartedAt.IsZero() {
		return st.StartedAt
	}
	return st.CreatedAt
}

// layerMetricsLocked adds the writable layer's series, labelled with the
// device of the filesystem holding it. Preconditions: c.mu held.
func (c *statsCollector) layerMetricsLocked(m *metricSink, id string, now time.Time) {
	l := c.layerSampleLocked(id, now)
	if !l.ok {
		return
	}
	dev := l.u.Mountpoint
	if l.fsOK {
		dev = l.fs.device
	}
	m.add("container_fs_usage_bytes", l.u.Bytes, dev)
	m.add("container_fs_inodes_total", l.u.Inodes, dev)
	if l.fsOK {
		m.add("container_fs_limit_bytes", l.fs.limit, dev)
		m.add("container_fs_inodes_free", l.fs.inodesFree, dev)
	}
}
