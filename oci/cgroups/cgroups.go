// Package cgroups owns cri-server's control groups: creating a container's
// cgroup, moving processes in, writing the runtime-spec's resource limits,
// freeze/thaw, kill-all, destroy, OOM accounting and stats. It has one
// interface (Manager) and two implementations: v1 (one directory per
// hierarchy) and v2 (one unified directory). Hybrid hosts, like the build
// machine, use v1 for every v1 controller and v2 only for what the unified
// hierarchy owns (hugetlb there), plus cgroup.kill.
//
// Naming: cgroupfs paths ("/kubepods/pod1/ctr") are relative to each
// hierarchy's root. The systemd form "slice:prefix:name" is accepted and
// mapped to the path systemd would use, but no systemd is asked: a real
// systemd driver (transient units over D-Bus) is future work.
//
// Use: m, _ := New(spec.Linux.CgroupsPath); m.Apply(pid); m.Set(res); ...
// m.Kill(SIGKILL); m.Destroy(). A Manager holds no kernel state, so any
// process (daemon, monitor, the oci CLI) can build one for an existing
// cgroup and call Kill, Stats or Destroy. Destroy removes the leaf and its
// descendants everywhere; parent directories are removed only by the
// Manager that created them (the pod cgroup belongs to the sandbox).
//
// Starting a process inside the cgroup: PrepareFork (ForkJoiner) creates it
// and returns what the child needs to join as it starts (clone3 into the v2
// directory, "0" into each v1 tasks file while single-threaded), which skips
// the RCU grace period a pid written to cgroup.procs waits for (forkjoin.go).
//
// Hybrid hosts: Apply also joins the unified directory (that is what makes
// cgroup.kill usable there); a hugetlb limit enables hugetlb in the
// unified root's cgroup.subtree_control on first use, as runc does.
//
// Stats for many containers: keep one StatsReader and call ReadMany; it
// reads only the CRI files, keeps them open and rereads them with pread.
package cgroups

import (
	"context"
	"log/slog"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Manager controls one container's (or pod's) cgroup.
type Manager interface {
	// Apply creates the cgroup(s) if needed and moves pid in. pid <= 0 only
	// creates them.
	Apply(pid int) error
	// Set writes limits: cpu, cpuset, memory, pids, hugetlb, blkio/io,
	// devices and (v2) unified keys. A nil r is a no-op.
	Set(r *specs.LinuxResources) error
	Freeze() error
	Thaw() error
	// Kill signals every process in the cgroup and its descendants.
	Kill(sig unix.Signal) error
	// Pids lists the processes of the cgroup and its descendants.
	Pids() ([]int, error)
	Stats() (*Stats, error)
	// OOMKillCount is the number of processes the kernel OOM-killed in the
	// cgroup (v1 memory.oom_control oom_kill, v2 memory.events oom_kill).
	OOMKillCount() (uint64, error)
	// OOMEvents sends one value per OOM notification (coalesced when the
	// reader is slow) and is closed when ctx ends or the cgroup is removed.
	OOMEvents(ctx context.Context) (<-chan struct{}, error)
	// Destroy removes the cgroup and its descendants in every hierarchy, and
	// the parents this Manager itself created if they are empty. Idempotent.
	Destroy() error
	// Paths maps controller -> absolute directory. The v2 directory (pure v2
	// and hybrid) is under the key "".
	Paths() map[string]string
}

// Option adjusts New.
type Option func(*options)

type options struct {
	layout        *Layout
	log           *slog.Logger
	v2Controllers []string
	v2CtrlSet     bool
}

// WithLayout uses l instead of the host's detected layout (tests, and
// callers that already detected it).
func WithLayout(l Layout) Option { return func(o *options) { o.layout = &l } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithV2Controllers restricts which controllers the v2 manager enables in
// the parents' cgroup.subtree_control (default: every controller the
// hierarchy offers; in hybrid mode only when Set needs one).
func WithV2Controllers(names ...string) Option {
	return func(o *options) { o.v2Controllers = names; o.v2CtrlSet = true }
}

// New returns the Manager for cgroupsPath (the spec's linux.cgroupsPath:
// "/a/b" or systemd's "slice:prefix:name"). Nothing is created before Apply.
func New(cgroupsPath string, opts ...Option) (Manager, error) {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	p, err := ParsePath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	var l Layout
	if o.layout != nil {
		l = *o.layout
	} else if l, err = DetectLayout(); err != nil {
		return nil, err
	}
	switch l.Mode {
	case ModeV2:
		return newV2(l.Unified, p, false, &o), nil
	case ModeV1, ModeHybrid:
		return newV1(l, p, &o), nil
	}
	return nil, errUnsupported("cgroup layout mode %d", l.Mode)
}

// Stats is one read of a cgroup's counters. Zero means "not available" for
// fields a controller lacks (e.g. swap without swap accounting).
type Stats struct {
	Timestamp time.Time
	CPU       CPUStats
	Memory    MemoryStats
	Pids      PidsStats
	// Hugetlb is keyed by page size as the spec writes it ("2MB", "1GB").
	Hugetlb map[string]HugetlbStats
	// Read with StatsReader.Full only (stats_full.go).
	Procs ProcsStats
	Blkio []BlkioDevice
}

// CPUStats are cumulative since the cgroup was created.
type CPUStats struct {
	UsageNanos       uint64 // CRI usage_core_nano_seconds
	UserNanos        uint64
	SystemNanos      uint64
	Periods          uint64
	ThrottledPeriods uint64
	ThrottledNanos   uint64
}

// MemoryStats are in bytes, page faults in events. Limit, SwapLimit == 0
// means unlimited.
type MemoryStats struct {
	Usage           uint64
	WorkingSet      uint64 // Usage - inactive_file, as the kubelet evicts on
	RSS             uint64 // v1 total_rss, v2 anon
	Cache           uint64 // v1 total_cache, v2 file
	InactiveFile    uint64
	PageFaults      uint64
	MajorPageFaults uint64
	Limit           uint64
	Available       uint64 // Limit - WorkingSet when limited
	SwapUsage       uint64
	SwapLimit       uint64
	OOMKills        uint64
	MappedFile      uint64 // v1 total_mapped_file, v2 file_mapped
	KernelUsage     uint64 // v1 memory.kmem.usage_in_bytes, v2 memory.stat kernel (Full)
	MaxUsage        uint64 // v1 memory.max_usage_in_bytes, v2 memory.peak (Full)
	Failcnt         uint64 // v1 memory.failcnt, v2 memory.events max (Full)
}

// PidsStats: Current counts tasks (threads); Limit 0 is unlimited.
type PidsStats struct {
	Current uint64
	Limit   uint64
}

// HugetlbStats for one page size.
type HugetlbStats struct {
	Usage    uint64
	MaxUsage uint64 // v1 only
	Failcnt  uint64 // v1 failcnt, v2 events max
}
