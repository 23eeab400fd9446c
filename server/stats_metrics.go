package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci/cgroups"
	"github.com/cri-server/cri-server/sandbox"
)

// The metric RPCs serve the kubelet when it takes container metrics from
// the CRI instead of cAdvisor (PodAndContainerStatsFromCRI): it asks for
// the descriptors once, then for the values on each scrape of
// /metrics/cadvisor, and republishes them under these names and labels.
// Names and label keys follow cAdvisor's, so dashboards keep working.
//
// Values are integers (the CRI's Metric carries a UInt64Value): seconds
// are whole seconds, as CRI-O reports them.

// metricLabelKeys are cAdvisor's labels on the kubelet's endpoint. A pod's
// own series have container="" as cAdvisor's pod cgroup series do.
var metricLabelKeys = []string{"container", "id", "image", "name", "namespace", "pod"}

func withKeys(extra ...string) []string {
	return append(append([]string(nil), metricLabelKeys...), extra...)
}

type metricDef struct {
	name, help string
	typ        runtime.MetricType
	extra      []string
}

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

var metricDefs = []metricDef{
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, []string{"cpu"}},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, nil},
	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, nil},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil},
	{"container_threads", "Number of threads running inside the container.", gauge, nil},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", gauge, nil},
	{"container_memory_failcnt", "Number of memory usage hits limits.", counter, nil},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil},
	{"container_processes", "Number of processes running inside the container.", gauge, nil},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil},
	{"container_sockets", "Number of open sockets for the container.", gauge, nil},
	{"container_spec_cpu_period", "CPU period of the container.", gauge, nil},
	{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"}},
	{"container_fs_inodes_total", "Number of Inodes.", gauge, []string{"device"}},
	{"container_fs_inodes_free", "Number of available Inodes.", gauge, []string{"device"}},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"}},
	{"container_blkio_device_usage_total", "Blkio Device bytes usage.", counter, []string{"device", "major", "minor", "operation"}},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", counter, []string{"device"}},
	{"container_fs_reads_total", "Cumulative count of reads completed.", counter, []string{"device"}},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", counter, []string{"device"}},
	{"container_fs_writes_total", "Cumulative count of writes completed.", counter, []string{"device"}},
	{"container_last_seen", "Last time a container was seen by the exporter.", gauge, nil},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", counter, []string{"interface"}},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", counter, []string{"interface"}},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", counter, []string{"interface"}},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", counter, []string{"interface"}},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", counter, []string{"interface"}},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", counter, []string{"interface"}},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", counter, []string{"interface"}},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", counter, []string{"interface"}},
}

var metricDescriptors = func() []*runtime.MetricDescriptor {
	out := make([]*runtime.MetricDescriptor, len(metricDefs))
	for i, d := range metricDefs {
		out[i] = &runtime.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: withKeys(d.extra...)}
	}
	return out
}()

var metricTypes = func() map[string]runtime.MetricType {
	m := map[string]runtime.MetricType{}
	for _, d := range metricDefs {
		m[d.name] = d.typ
	}
	return m
}()

// ListMetricDescriptors lists every metric ListPodSandboxMetrics returns.
func (s *Server) ListMetricDescriptors(ctx context.Context, r *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	return &runtime.ListMetricDescriptorsResponse{Descriptors: metricDescriptors}, nil
}

// ListPodSandboxMetrics reads every ready pod and its containers in one
// pass, as ListPodSandboxStats does, with the counters only metrics use.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, r *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	return &runtime.ListPodSandboxMetricsResponse{PodMetrics: s.podMetrics()}, nil
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *Server) StreamPodSandboxMetrics(r *runtime.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	all := s.podMetrics()
	for len(all) > 0 {
		n := min(streamChunk, len(all))
		if err := stream.Send(&runtime.StreamPodSandboxMetricsResponse{PodSandboxMetrics: all[:n]}); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

func (s *Server) podMetrics() []*runtime.PodSandboxMetrics {
	return s.podMetricsOf(s.podStatsTargets(nil))
}

func (s *Server) podMetricsOf(pods []*sandbox.Pod) []*runtime.PodSandboxMetrics {
	samples := s.readPods(pods, true)
	now := time.Now()
	c := &s.stats
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*runtime.PodSandboxMetrics, len(samples))
	for i := range samples {
		out[i] = c.podMetricsLocked(&samples[i], now)
	}
	c.sweepLocked(s.statsLive)
	return out
}

// metricSink appends series with one set of base label values.
type metricSink struct {
	base []string
	out  []*runtime.Metric
}

func (m *metricSink) add(name string, v uint64, extra ...string) {
	labels := m.base
	if len(extra) > 0 {
		labels = append(append(make([]string, 0, len(m.base)+len(extra)), m.base...), extra...)
	}
	// Timestamp 0: gathered now, not cached (the kubelet then stamps it).
	m.out = append(m.out, &runtime.Metric{Name: name, MetricType: metricTypes[name],
		LabelValues: labels, Value: &runtime.UInt64Value{Value: v}})
}

// podMetricsLocked. Preconditions: c.mu held.
func (c *statsCollector) podMetricsLocked(smp *podSample, now time.Time) *runtime.PodSandboxMetrics {
	p := smp.pod
	pm := &runtime.PodSandboxMetrics{PodSandboxId: p.ID}
	ns, name := p.Metadata.GetNamespace(), p.Metadata.GetName()
	podSink := &metricSink{base: []string{"", p.ID, "", p.ID, ns, name}}
	st := smp.cg
	if st == nil {
		st = sumContainers(smp.ctrs, now)
	}
	cgroupMetrics(podSink, st)
	c.fullCgroupMetricsLocked(podSink, st)
	podSink.add("container_start_time_seconds", uint64(max(p.CreatedAt, 0)/int64(time.Second)))
	if smp.net != nil {
		for _, it := range smp.net.Interfaces {
			podSink.add("container_network_receive_bytes_total", it.RxBytes, it.Name)
			podSink.add("container_network_receive_packets_total", it.RxPackets, it.Name)
			podSink.add("container_network_receive_packets_dropped_total", it.RxDropped, it.Name)
			podSink.add("container_network_receive_errors_total", it.RxErrors, it.Name)
			podSink.add("container_network_transmit_bytes_total", it.TxBytes, it.Name)
			podSink.add("container_network_transmit_packets_total", it.TxPackets, it.Name)
			podSink.add("container_network_transmit_packets_dropped_total", it.TxDropped, it.Name)
			podSink.add("container_network_transmit_errors_total", it.TxErrors, it.Name)
		}
	}
	podSink.add("container_last_seen", uint64(now.Unix()))
	pm.Metrics = podSink.out
	for _, cs := range smp.ctrs {
		if cs.st == nil {
			continue // no cgroup: cAdvisor drops a container's series when it exits
		}
		rec := cs.rec
		sink := &metricSink{base: []string{rec.Metadata.GetName(), rec.ID, rec.Image.GetImage(), rec.ID, ns, name}}
		cgroupMetrics(sink, cs.st)
		c.fullCgroupMetricsLocked(sink, cs.st)
		specMetrics(sink, rec.Status.Resources)
		sink.add("container_start_time_seconds", uint64(max(startTime(&rec.Status).Unix(), 0)))
		c.layerMetricsLocked(sink, rec.ID, now)
		sink.add("container_last_seen", uint64(now.Unix()))
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtime.ContainerMetrics{ContainerId: rec.ID, Metrics: sink.out})
	}
	return pm
}

// cgroupMetrics adds the series one cgroup read gives.
func cgroupMetrics(m *metricSink, st *cgroups.Stats) {
	const sec = uint64(time.Second)
	m.add("container_cpu_usage_seconds_total", st.CPU.UsageNanos/sec, "total")
	m.add("container_cpu_user_seconds_total", st.CPU.UserNanos/sec)
	m.add("container_cpu_system_seconds_total", st.CPU.SystemNanos/sec)
	m.add("container_cpu_cfs_periods_total", st.CPU.Periods)
	m.add("container_cpu_cfs_throttled_periods_total", st.CPU.ThrottledPeriods)
	m.add("container_cpu_cfs_throttled_seconds_total", st.CPU.ThrottledNanos/sec)
	mem := &st.Memory
	m.add("container_memory_usage_bytes", mem.Usage)
	m.add("container_memory_working_set_bytes", mem.WorkingSet)
	m.add("container_memory_rss", mem.RSS)
	m.add("container_memory_cache", mem.Cache)
	m.add("container_memory_swap", mem.SwapUsage)
	m.add("container_memory_failures_total", mem.PageFaults, "pgfault", "container")
	m.add("container_memory_failures_total", mem.MajorPageFaults, "pgmajfault", "container")
	m.add("container_oom_events_total", mem.OOMKills)
	m.add("container_spec_memory_limit_bytes", mem.Limit)
	m.add("container_threads", st.Pids.Current)
	m.add("container_threads_max", st.Pids.Limit)
}
