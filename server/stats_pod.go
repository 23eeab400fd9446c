package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/netdev"
	"github.com/cri-server/cri-server/oci/cgroups"
	"github.com/cri-server/cri-server/sandbox"
)

// podKeyPrefix keys a pod's entries in the collector's maps, beside the
// containers' ids.
const podKeyPrefix = "pod/"

// defaultInterface is the interface the kubelet reports as the pod's
// network (kubelet and containerd name it eth0).
const defaultInterface = "eth0"

// PodSandboxStats reports a pod's cgroup, network and containers. A pod
// that is not ready answers its attributes and containers only.
func (s *Server) PodSandboxStats(ctx context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errdefs.InvalidArgument("pod sandbox id is empty")
	}
	p, err := s.pods.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: s.podStats([]*sandbox.Pod{p})[0]}, nil
}

// ListPodSandboxStats reports the ready pods the filter selects; pods that
// are not ready are left out, as containerd leaves them out.
func (s *Server) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	return &runtime.ListPodSandboxStatsResponse{Stats: s.podStats(s.podStatsTargets(r.GetFilter()))}, nil
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *Server) StreamPodSandboxStats(r *runtime.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxStatsResponse]) error {
	all := s.podStats(s.podStatsTargets(r.GetFilter()))
	for len(all) > 0 {
		n := min(streamChunk, len(all))
		if err := stream.Send(&runtime.StreamPodSandboxStatsResponse{PodSandboxStats: all[:n]}); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

func (s *Server) podStatsTargets(f *runtime.PodSandboxStatsFilter) []*sandbox.Pod {
	var out []*sandbox.Pod
	for _, p := range s.pods.List() {
		if p.State != sandbox.StateReady {
			continue
		}
		if f.GetId() != "" && !strings.HasPrefix(p.ID, f.GetId()) {
			continue
		}
		if !labelsMatch(p.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// podSample is one pod's reads.
type podSample struct {
	pod  *sandbox.Pod
	ctrs []ctrSample
	// cg is the pod cgroup's read; nil when the pod has no cgroup of its
	// own (no cgroup_parent) and its containers are summed instead.
	cg  *cgroups.Stats
	net *netdev.Result
}

// podStats reads every pod's cgroup and containers in one pass and every
// pod's network namespace from one locked thread.
func (s *Server) podStats(pods []*sandbox.Pod) []*runtime.PodSandboxStats {
	samples := s.readPods(pods, false)
	c := &s.stats
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	out := make([]*runtime.PodSandboxStats, len(samples))
	for i := range samples {
		out[i] = c.podToCRILocked(&samples[i], now)
	}
	c.sweepLocked(s.statsLive)
	return out
}

// readPods gathers cgroups and network counters for pods.
func (s *Server) readPods(pods []*sandbox.Pod, full bool) []podSample {
	samples := make([]podSample, len(pods))
	byPod := make(map[string]int, len(pods))
	for i, p := range pods {
		samples[i].pod = p
		byPod[p.ID] = i
	}
	var recs []*containerRecord
	for _, rec := range s.ctrs.list() {
		if _, ok := byPod[rec.PodID]; ok {
			recs = append(recs, rec)
		}
	}
	c := &s.stats
	c.mu.Lock()
	c.initLocked()
	s.wireLayerUsageLocked()
	for _, smp := range c.readContainersLocked(recs, full, s) {
		i := byPod[smp.rec.PodID]
		samples[i].ctrs = append(samples[i].ctrs, smp)
	}
	c.readPodCgroupsLocked(samples, full, s)
	c.mu.Unlock()
	s.readPodNetworks(samples)
	return samples
}

// readPodCgroupsLocked reads the cgroup_parent of each ready pod that has
// one. Preconditions: c.mu held.
func (c *statsCollector) readPodCgroupsLocked(samples []podSample, full bool, s *Server) {
	var ms []cgroups.Manager
	var idx []int
	for i := range samples {
		p := samples[i].pod
		if p.State != sandbox.StateReady || p.CgroupParent == "" {
			continue
		}
		key := podKeyPrefix + p.ID
		m, ok := c.cgroups[key]
		if !ok {
			var err error
			if m, err = c.newCgroup(p.CgroupParent); err != nil {
				s.log.Debug("no cgroup for pod stats", "pod", p.ID, "error", err)
				continue
			}
			c.cgroups[key] = m
		}
		ms = append(ms, m)
		idx = append(idx, i)
	}
	if len(ms) == 0 {
		return
	}
	r := c.fast
	if full {
		r = c.full
	}
	sts := make([]cgroups.Stats, len(ms))
	errs := r.ReadMany(ms, sts)
	for j, i := range idx {
		if errs != nil && errs[j] != nil {
			// v1: the sandbox makes the pod cgroup only in memory, cpu and
			// pids; cpuacct appears with the first container. Until then
			// the containers are summed.
			if !errors.Is(errs[j], errdefs.ErrNotFound) {
				s.log.Warn("read pod stats", "pod", samples[i].pod.ID, "error", errs[j])
			}
			continue
		}
		samples[i].cg = &sts[j]
	}
}

// readPodNetworks reads the pinned network namespace of each ready pod
// that has its own.
func (s *Server) readPodNetworks(samples []podSample) {
	var paths []string
	var idx []int
	for i := range samples {
		p := samples[i].pod
		if p.State != sandbox.StateReady || p.NetNS == "" || p.HostNetwork() {
			continue
		}
		paths = append(paths, p.NetNS)
		idx = append(idx, i)
	}
	if len(paths) == 0 {
		return
	}
	res, err := netdev.Read(paths)
	if err != nil {
		s.log.Warn("read pod networks", "error", err)
		return
	}
	for j, i := range idx {
		if res[j].Err != nil {
			s.log.Debug("read pod network", "pod", samples[i].pod.ID, "error", res[j].Err)
			continue
		}
		samples[i].net = &res[j]
	}
}

// podToCRILocked converts one pod. Preconditions: c.mu held.
func (c *statsCollector) podToCRILocked(smp *podSample, now time.Time) *runtime.PodSandboxStats {
	p := smp.pod
	ps := &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: p.ID, Metadata: p.Metadata, Labels: p.Labels, Annotations: p.Annotations},
		Linux:      &runtime.LinuxPodSandboxStats{},
	}
	for _, cs := range smp.ctrs {
		ps.Linux.Containers = append(ps.Linux.Containers, c.toCRILocked(cs, now))
	}
	if p.State != sandbox.StateReady {
		return ps
	}
	st := smp.cg
	if st == nil {
		st = sumContainers(smp.ctrs, now)
	}
	ps.Linux.Cpu = c.cpuUsageLocked(podKeyPrefix+p.ID, st)
	ps.Linux.Memory = memoryUsage(st)
	ps.Linux.Process = &runtime.ProcessUsage{Timestamp: st.Timestamp.UnixNano(),
		ProcessCount: &runtime.UInt64Value{Value: st.Pids.Current}}
	if smp.net != nil {
		ps.Linux.Network = networkUsage(smp.net.Interfaces, now)
	}
	return ps
}

// sumContainers stands in for a pod cgroup: the pod's containers added
// up. Limits are not summed: a pod without a cgroup has none.
func sumContainers(ctrs []ctrSample, now time.Time) *cgroups.Stats {
	sum := &cgroups.Stats{Timestamp: now}
	for _, cs := range ctrs {
		if cs.st == nil {
			continue
		}
		sum.CPU.UsageNanos += cs.st.CPU.UsageNanos
		m, o := &sum.Memory, &cs.st.Memory
		m.Usage += o.Usage
		m.WorkingSet += o.WorkingSet
		m.RSS += o.RSS
		m.Cache += o.Cache
		m.PageFaults += o.PageFaults
		m.MajorPageFaults += o.MajorPageFaults
		m.SwapUsage += o.SwapUsage
		m.MappedFile += o.MappedFile
		m.KernelUsage += o.KernelUsage
		m.Failcnt += o.Failcnt
		sum.Pids.Current += cs.st.Pids.Current
		sum.Procs.Processes += cs.st.Procs.Processes
		sum.Procs.FDs += cs.st.Procs.FDs
		sum.Procs.Sockets += cs.st.Procs.Sockets
	}
	return sum
}

func networkUsage(ifs []netdev.Interface, now time.Time) *runtime.NetworkUsage {
	nu := &runtime.NetworkUsage{Timestamp: now.UnixNano()}
	for _, it := range ifs {
		u := &runtime.NetworkInterfaceUsage{Name: it.Name,
			RxBytes: &runtime.UInt64Value{Value: it.RxBytes}, RxErrors: &runtime.UInt64Value{Value: it.RxErrors},
			TxBytes: &runtime.UInt64Value{Value: it.TxBytes}, TxErrors: &runtime.UInt64Value{Value: it.TxErrors}}
		if it.Name == defaultInterface {
			nu.DefaultInterface = u
		} else {
			nu.Interfaces = append(nu.Interfaces, u)
		}
	}
	return nu
}
