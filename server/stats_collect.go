package server

// The stats collector behind ContainerStats, PodSandboxStats, their List
// and Stream forms and the metric RPCs. Everything is read in one pass per
// call: one StatsReader walks every cgroup asked for (no goroutine, no
// round trip per container, unlike containerd's shim fan-out), and one
// locked thread visits every pod's network namespace.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/imagesvc"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/oci/cgroups"
)

// layerTTL is how long a writable layer's walked size is reused. The
// kubelet asks every 10-15 s; walking 100 upper dirs on every call would
// cost more than reading all their cgroups.
const layerTTL = 10 * time.Second

// nanoCoresMinWindow: a sample closer than this to the kept one reuses the
// last rate instead of replacing the baseline, so two callers asking at
// once (kubelet summary, metrics-server) do not turn each other's window
// into noise.
const nanoCoresMinWindow = time.Second

type statsCollector struct {
	mu sync.Mutex // StatsReader is not safe for concurrent use
	// fast reads what the CRI stats carry; full also what the metric RPCs
	// export (throttling, user/system time, OOM kills).
	fast, full *cgroups.StatsReader
	// cgroups caches each container's (and pod's, keyed "pod/"+id)
	// cgroup manager: the path is read from the bundle once.
	cgroups map[string]cgroups.Manager
	cpu     map[string]cpuSample
	layers  map[string]layerSample
	// devNames caches block device names by major<<32|minor.
	devNames map[uint64]string
	// layerUsage walks a container's upper dir; nil reports no layer.
	layerUsage func(id string) (imagesvc.Usage, error)
	// newCgroup builds a manager for a cgroupsPath (a seam for tests).
	newCgroup func(path string) (cgroups.Manager, error)
}

// cpuSample is the baseline usage_nano_cores is computed from.
type cpuSample struct {
	at      time.Time
	usage   uint64
	rate    uint64
	hasRate bool
}

type layerSample struct {
	at time.Time
	u  imagesvc.Usage
	ok bool
	// fs is the filesystem holding the layer (statfs at the same time).
	fs   fsInfo
	fsOK bool
}

// init makes the maps on first use, so a Server built by hand in tests
// needs no constructor. Preconditions: c.mu held.
func (c *statsCollector) initLocked() {
	if c.cgroups != nil {
		return
	}
	c.fast, c.full = cgroups.NewStatsReader(), cgroups.NewStatsReader()
	c.full.Full = true
	c.cgroups = map[string]cgroups.Manager{}
	c.cpu = map[string]cpuSample{}
	c.layers = map[string]layerSample{}
	c.devNames = map[uint64]string{}
	if c.newCgroup == nil {
		c.newCgroup = func(p string) (cgroups.Manager, error) { return cgroups.New(p) }
	}
}

// ctrSample is one container's read: st is nil when the container has no
// cgroup to read (exited, or its cgroup is already gone).
type ctrSample struct {
	rec *containerRecord
	st  *cgroups.Stats
}

// hasCgroup says whether a container in this state is expected to have a
// cgroup: created containers do (the init waits in it before exec).
func hasCgroup(st runtime.ContainerState) bool {
	return st == runtime.ContainerState_CONTAINER_CREATED || st == runtime.ContainerState_CONTAINER_RUNNING
}

// readContainersLocked reads the cgroups of recs in one pass.
// Preconditions: c.mu held.
func (c *statsCollector) readContainersLocked(recs []*containerRecord, full bool, s *Server) []ctrSample {
	out := make([]ctrSample, len(recs))
	ms := make([]cgroups.Manager, 0, len(recs))
	idx := make([]int, 0, len(recs))
	for i, rec := range recs {
		out[i].rec = rec
		if !hasCgroup(rec.Status.State) {
			continue
		}
		m, err := c.managerLocked(rec)
		if err != nil {
			s.log.Debug("no cgroup for container stats", "container", rec.ID, "error", err)
			continue
		}
		ms = append(ms, m)
		idx = append(idx, i)
	}
	if len(ms) == 0 {
		return out
	}
	r := c.fast
	if full {
		r = c.full
	}
	sts := make([]cgroups.Stats, len(ms))
	errs := r.ReadMany(ms, sts)
	for j, i := range idx {
		if errs != nil && errs[j] != nil {
			// A container that exited between the list and the read:
			// reported like an exited one, not as a failed call.
			if !errors.Is(errs[j], errdefs.ErrNotFound) {
				s.log.Warn("read container stats", "container", recs[i].ID, "error", errs[j])
			}
			continue
		}
		out[i].st = &sts[j]
	}
	return out
}

// managerLocked returns rec's cgroup manager, from the spec the monitor
// was given. Preconditions: c.mu held.
func (c *statsCollector) managerLocked(rec *containerRecord) (cgroups.Manager, error) {
	if m, ok := c.cgroups[rec.ID]; ok {
		return m, nil
	}
	path, err := specCgroupsPath(rec)
	if err != nil {
		return nil, err
	}
	m, err := c.newCgroup(path)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", path, err)
	}
	c.cgroups[rec.ID] = m
	return m, nil
}

// specCgroupsPath reads linux.cgroupsPath from the container's bundle (a
// runtime-spec config.json), with the executor's default when the spec
// leaves it empty.
func specCgroupsPath(rec *containerRecord) (string, error) {
	b, err := os.ReadFile(filepath.Join(rec.Bundle, monitor.SpecFile))
	if err != nil {
		if os.IsNotExist(err) {
			return "", errdefs.NotFound("spec of container %s", rec.ID)
		}
		return "", fmt.Errorf("read spec of container %s: %w", rec.ID, err)
	}
	var sp struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &sp); err != nil {
		return "", fmt.Errorf("decode spec of container %s: %w", rec.ID, err)
	}
	if sp.Linux == nil || sp.Linux.CgroupsPath == "" {
		return "/cri-server/" + rec.ID, nil
	}
	return sp.Linux.CgroupsPath, nil
}

// nanoCoresLocked turns cumulative usage into a rate against the kept
// sample, as containerd and CRI-O do; nil until two samples exist.
// Preconditions: c.mu held.
func (c *statsCollector) nanoCoresLocked(id string, usage uint64, at time.Time) *runtime.UInt64Value {
	prev, ok := c.cpu[id]
	if !ok || usage < prev.usage || !at.After(prev.at) {
		// First sight, or a counter that went back (a recreated cgroup).
		c.cpu[id] = cpuSample{at: at, usage: usage}
		return nil
	}
	d := at.Sub(prev.at)
	if d < nanoCoresMinWindow {
		if prev.hasRate {
			return &runtime.UInt64Value{Value: prev.rate}
		}
		if d < nanoCoresMinWindow/10 {
			return nil
		}
	}
	rate := uint64(float64(usage-prev.usage) / d.Seconds())
	c.cpu[id] = cpuSample{at: at, usage: usage, rate: rate, hasRate: true}
	return &runtime.UInt64Value{Value: rate}
}

// layerLocked is the container's writable layer usage, walked at most
// once per layerTTL. Preconditions: c.mu held.
func (c *statsCollector) layerLocked(id string, now time.Time) *runtime.FilesystemUsage {
	l := c.layerSampleLocked(id, now)
	if !l.ok {
		return nil
	}
	return &runtime.FilesystemUsage{Timestamp: l.at.UnixNano(),
		FsId:      &runtime.FilesystemIdentifier{Mountpoint: l.u.Mountpoint},
		UsedBytes: &runtime.UInt64Value{Value: l.u.Bytes}, InodesUsed: &runtime.UInt64Value{Value: l.u.Inodes}}
}

// layerSampleLocked walks the layer (and statfs its filesystem) at most
// once per layerTTL. Preconditions: c.mu held.
func (c *statsCollector) layerSampleLocked(id string, now time.Time) layerSample {
	if c.layerUsage == nil {
		return layerSample{}
	}
	l, ok := c.layers[id]
	if !ok || now.Sub(l.at) >= layerTTL {
		u, err := c.layerUsage(id)
		l = layerSample{at: now, u: u, ok: err == nil}
		if l.ok {
			l.fs, l.fsOK = c.statFsLocked(u.Mountpoint)
		}
		c.layers[id] = l
	}
	return l
}

// sweepLocked forgets what it keeps for containers and pods that are gone.
// Preconditions: c.mu held.
func (c *statsCollector) sweepLocked(live func(id string) bool) {
	for id := range c.cgroups {
		if !live(id) {
			delete(c.cgroups, id)
		}
	}
	for id := range c.cpu {
		if !live(id) {
			delete(c.cpu, id)
		}
	}
	for id := range c.layers {
		if !live(id) {
			delete(c.layers, id)
		}
	}
}
