package server

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci/cgroups"
)

// ContainerStats reads one container's cgroup. A container without a
// cgroup (exited) answers its attributes and writable layer only, as it
// does in ListContainerStats.
func (s *Server) ContainerStats(ctx context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	rec, _, err := s.ctrs.resolve(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats([]*containerRecord{rec})[0]}, nil
}

// ListContainerStats answers every container the filter selects, created,
// running and exited, as containerd does: the kubelet's CRI stats provider
// matches them against ListContainers. Only containers with a cgroup carry
// cpu and memory.
func (s *Server) ListContainerStats(ctx context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	return &runtime.ListContainerStatsResponse{Stats: s.containerStats(s.statsTargets(r.GetFilter()))}, nil
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *Server) StreamContainerStats(r *runtime.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamContainerStatsResponse]) error {
	all := s.containerStats(s.statsTargets(r.GetFilter()))
	for len(all) > 0 {
		n := min(streamChunk, len(all))
		if err := stream.Send(&runtime.StreamContainerStatsResponse{ContainerStats: all[:n]}); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

// statsTargets selects containers by id or id prefix, pod id or prefix,
// and labels (all must match).
func (s *Server) statsTargets(f *runtime.ContainerStatsFilter) []*containerRecord {
	var out []*containerRecord
	for _, rec := range s.ctrs.list() {
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(rec.ID, f.Id) {
				continue
			}
			if f.PodSandboxId != "" && !strings.HasPrefix(rec.PodID, f.PodSandboxId) {
				continue
			}
			if !labelsMatch(rec.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, rec)
	}
	return out
}

func labelsMatch(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// containerStats reads recs in one pass and converts them.
func (s *Server) containerStats(recs []*containerRecord) []*runtime.ContainerStats {
	c := &s.stats
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initLocked()
	s.wireLayerUsageLocked()
	samples := c.readContainersLocked(recs, false, s)
	now := time.Now()
	out := make([]*runtime.ContainerStats, len(samples))
	for i, smp := range samples {
		out[i] = c.toCRILocked(smp, now)
	}
	c.sweepLocked(s.statsLive)
	return out
}

// wireLayerUsageLocked points the collector at the image service once.
// Preconditions: s.stats.mu held.
func (s *Server) wireLayerUsageLocked() {
	if s.stats.layerUsage == nil && s.images != nil {
		s.stats.layerUsage = s.images.WritableLayerUsage
	}
}

// statsLive says whether a collector key is a known container or pod.
func (s *Server) statsLive(id string) bool {
	if podID, ok := strings.CutPrefix(id, podKeyPrefix); ok {
		if s.pods == nil {
			return false
		}
		_, err := s.pods.Get(podID)
		return err == nil
	}
	_, _, err := s.ctrs.get(id)
	return err == nil
}

// toCRILocked converts one sample. Preconditions: c.mu held.
func (c *statsCollector) toCRILocked(smp ctrSample, now time.Time) *runtime.ContainerStats {
	rec := smp.rec
	cs := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{Id: rec.ID, Metadata: rec.Metadata,
			Labels: rec.Labels, Annotations: rec.Annotations},
		WritableLayer: c.layerLocked(rec.ID, now),
	}
	if smp.st == nil {
		return cs
	}
	cs.Cpu = c.cpuUsageLocked(rec.ID, smp.st)
	cs.Memory = memoryUsage(smp.st)
	cs.Swap = swapUsage(smp.st)
	return cs
}

// cpuUsageLocked. Preconditions: c.mu held.
func (c *statsCollector) cpuUsageLocked(id string, st *cgroups.Stats) *runtime.CpuUsage {
	return &runtime.CpuUsage{Timestamp: st.Timestamp.UnixNano(),
		UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPU.UsageNanos},
		UsageNanoCores:       c.nanoCoresLocked(id, st.CPU.UsageNanos, st.Timestamp)}
}

func memoryUsage(st *cgroups.Stats) *runtime.MemoryUsage {
	m := &st.Memory
	mu := &runtime.MemoryUsage{Timestamp: st.Timestamp.UnixNano(),
		WorkingSetBytes: &runtime.UInt64Value{Value: m.WorkingSet},
		UsageBytes:      &runtime.UInt64Value{Value: m.Usage},
		RssBytes:        &runtime.UInt64Value{Value: m.RSS},
		PageFaults:      &runtime.UInt64Value{Value: m.PageFaults},
		MajorPageFaults: &runtime.UInt64Value{Value: m.MajorPageFaults},
	}
	// Unlimited memory has no meaningful "available": left unset, as
	// cAdvisor and containerd leave it.
	if m.Limit != 0 {
		mu.AvailableBytes = &runtime.UInt64Value{Value: m.Available}
	}
	return mu
}

func swapUsage(st *cgroups.Stats) *runtime.SwapUsage {
	m := &st.Memory
	su := &runtime.SwapUsage{Timestamp: st.Timestamp.UnixNano(),
		SwapUsageBytes: &runtime.UInt64Value{Value: m.SwapUsage}}
	if m.SwapLimit != 0 {
		avail := uint64(0)
		if m.SwapLimit > m.SwapUsage {
			avail = m.SwapLimit - m.SwapUsage
		}
		su.SwapAvailableBytes = &runtime.UInt64Value{Value: avail}
	}
	return su
}
