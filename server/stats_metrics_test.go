package server

import (
	"context"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/imagesvc"
	"github.com/cri-server/cri-server/netdev"
	"github.com/cri-server/cri-server/oci/cgroups"
	"github.com/cri-server/cri-server/sandbox"
)

// checkMetrics does what the kubelet's CRI metrics collector does with
// each series (a const metric from its descriptor) and returns the series
// by name and label values.
func checkMetrics(t *testing.T, ms []*runtime.Metric) map[string]map[string]uint64 {
	t.Helper()
	descs := map[string]*prometheus.Desc{}
	keys := map[string]int{}
	r, _ := (&Server{}).ListMetricDescriptors(context.Background(), &runtime.ListMetricDescriptorsRequest{})
	for _, d := range r.Descriptors {
		if _, dup := descs[d.Name]; dup {
			t.Fatalf("descriptor %s twice", d.Name)
		}
		descs[d.Name] = prometheus.NewDesc(d.Name, d.Help, d.LabelKeys, nil)
		keys[d.Name] = len(d.LabelKeys)
	}
	out := map[string]map[string]uint64{}
	for _, m := range ms {
		d, ok := descs[m.Name]
		if !ok {
			t.Fatalf("metric %s has no descriptor", m.Name)
		}
		if len(m.LabelValues) != keys[m.Name] {
			t.Fatalf("metric %s: %d label values for %d keys", m.Name, len(m.LabelValues), keys[m.Name])
		}
		typ := prometheus.GaugeValue
		if m.MetricType == runtime.MetricType_COUNTER {
			typ = prometheus.CounterValue
		}
		if _, err := prometheus.NewConstMetric(d, typ, float64(m.Value.GetValue()), m.LabelValues...); err != nil {
			t.Fatalf("metric %s: %v", m.Name, err)
		}
		if out[m.Name] == nil {
			out[m.Name] = map[string]uint64{}
		}
		key := ""
		for _, v := range m.LabelValues {
			key += v + "|"
		}
		out[m.Name][key] = m.Value.GetValue()
	}
	return out
}

func TestPodMetricsSeries(t *testing.T) {
	now := time.Now()
	pod := &sandbox.Pod{ID: "p1", State: sandbox.StateReady,
		Metadata: &runtime.PodSandboxMetadata{Name: "web", Namespace: "shop"}}
	running := &containerRecord{ID: "c1", PodID: "p1", Metadata: &runtime.ContainerMetadata{Name: "app"},
		Image: &runtime.ImageSpec{Image: "nginx:1"}}
	exited := &containerRecord{ID: "c2", PodID: "p1", Metadata: &runtime.ContainerMetadata{Name: "init"}}
	st := &cgroups.Stats{Timestamp: now,
		CPU:    cgroups.CPUStats{UsageNanos: 3_500_000_000, UserNanos: 2e9, SystemNanos: 1e9},
		Memory: cgroups.MemoryStats{Usage: 100, WorkingSet: 80, RSS: 60, PageFaults: 7, MajorPageFaults: 1, Limit: 1000},
		Pids:   cgroups.PidsStats{Current: 3}}
	smp := &podSample{pod: pod, ctrs: []ctrSample{{rec: running, st: st}, {rec: exited}},
		net: &netdev.Result{Interfaces: []netdev.Interface{{Name: "eth0", RxBytes: 11, TxBytes: 22}}}}
	c := &statsCollector{}
	c.initLocked()
	pm := c.podMetricsLocked(smp, now)

	if pm.PodSandboxId != "p1" || len(pm.ContainerMetrics) != 1 || pm.ContainerMetrics[0].ContainerId != "c1" {
		t.Fatalf("pod metrics %v: want the running container only", pm)
	}
	pod1 := checkMetrics(t, pm.Metrics)
	ctr := checkMetrics(t, pm.ContainerMetrics[0].Metrics)
	for _, tc := range []struct {
		name   string
		series map[string]map[string]uint64
		metric string
		labels string
		want   uint64
	}{
		{name: "container cpu in whole seconds", series: ctr, metric: "container_cpu_usage_seconds_total", labels: "app|c1|nginx:1|c1|shop|web|total|", want: 3},
		{name: "container working set", series: ctr, metric: "container_memory_working_set_bytes", labels: "app|c1|nginx:1|c1|shop|web|", want: 80},
		{name: "major faults", series: ctr, metric: "container_memory_failures_total", labels: "app|c1|nginx:1|c1|shop|web|pgmajfault|container|", want: 1},
		{name: "limit", series: ctr, metric: "container_spec_memory_limit_bytes", labels: "app|c1|nginx:1|c1|shop|web|", want: 1000},
		{name: "threads", series: ctr, metric: "container_threads", labels: "app|c1|nginx:1|c1|shop|web|", want: 3},
		{name: "pod cpu is the containers' sum", series: pod1, metric: "container_cpu_usage_seconds_total", labels: "|p1||p1|shop|web|total|", want: 3},
		{name: "pod eth0 received", series: pod1, metric: "container_network_receive_bytes_total", labels: "|p1||p1|shop|web|eth0|", want: 11},
		{name: "pod eth0 sent", series: pod1, metric: "container_network_transmit_bytes_total", labels: "|p1||p1|shop|web|eth0|", want: 22},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.series[tc.metric][tc.labels]
			if !ok {
				t.Fatalf("no %s{%s}; have %v", tc.metric, tc.labels, tc.series[tc.metric])
			}
			if got != tc.want {
				t.Fatalf("%s = %d, want %d", tc.metric, got, tc.want)
			}
		})
	}
}

func TestContainerStateGauges(t *testing.T) {
	e := newEnv(t)
	run := e.create(t, "pod1", "run", nil, "/bin/sh", "-c", "exec sleep 100")
	e.create(t, "pod1", "created", nil, "/bin/true")
	done := e.create(t, "pod2", "done", nil, "/bin/true")
	e.startC(t, run)
	e.startC(t, done)
	e.waitExited(t, done)
	reg := prometheus.NewRegistry()
	reg.MustRegister(stateCollector{e.s})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			got[mf.GetName()+"/"+m.Label[0].GetValue()] = m.Gauge.GetValue()
		}
	}
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"cri_server_containers/created", 1},
		{"cri_server_containers/running", 1},
		{"cri_server_containers/exited", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got[tc.name] != tc.want {
				t.Fatalf("%s = %v, want %v (all: %v)", tc.name, got[tc.name], tc.want, got)
			}
		})
	}
}

// The series critest's metric spec checks, from a real cgroup: a container
// given critest's resources (64 MiB, period 100000, quota 20000) reports
// them; two processes holding a socket pair report 2 processes and 4
// sockets; the layer's filesystem reports its statfs capacity.
func TestContainerMetricsFromCgroup(t *testing.T) {
	e := newStatsEnv(t)
	layers := t.TempDir()
	e.s.stats.layerUsage = func(id string) (imagesvc.Usage, error) {
		return imagesvc.Usage{Mountpoint: layers, Bytes: 4096, Inodes: 2}, nil
	}
	before := time.Now().Add(-time.Second)
	res := &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 512,
		MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20}
	r, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: "pod1",
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "sock"}, Image: &runtime.ImageSpec{Image: "busybox"},
			// Forks after a second: by then the test has moved it into its cgroup.
			Command: []string{"/usr/bin/perl", "-MSocket", "-e", "socketpair(A, B, AF_UNIX, SOCK_STREAM, 0) or die; sleep 1; fork; sleep 100"},
			LogPath: "sock.log", Linux: &runtime.LinuxContainerConfig{Resources: res}}})
	if err != nil {
		t.Fatal(err)
	}
	id := r.ContainerId
	limit := int64(64 << 20)
	e.inCgroup(t, id, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})

	pod1 := &sandbox.Pod{ID: "pod1", State: sandbox.StateReady, CreatedAt: before.UnixNano(),
		Metadata: &runtime.PodSandboxMetadata{Name: "web", Namespace: "shop"}}
	var ctr map[string]map[string]uint64
	var pod map[string]map[string]uint64
	labels := "sock|" + id + "|busybox|" + id + "|shop|web|"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// The test env has pods without a sandbox manager: pod1 is given.
		for _, pm := range e.s.podMetricsOf([]*sandbox.Pod{pod1}) {
			if pm.PodSandboxId != "pod1" || len(pm.ContainerMetrics) != 1 {
				continue
			}
			pod = checkMetrics(t, pm.Metrics)
			ctr = checkMetrics(t, pm.ContainerMetrics[0].Metrics)
		}
		if ctr == nil {
			t.Fatal("no metrics of pod1's container")
		}
		if findSeries(ctr, "container_processes", labels) == 2 || time.Now().After(deadline) {
			break
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(layers, &sfs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, metric string
		want         uint64
	}{
		{name: "processes", metric: "container_processes", want: 2},
		{name: "sockets", metric: "container_sockets", want: 4},
		{name: "cpu period", metric: "container_spec_cpu_period", want: 100000},
		{name: "cpu quota", metric: "container_spec_cpu_quota", want: 20000},
		{name: "cpu shares", metric: "container_spec_cpu_shares", want: 512},
		{name: "memory limit from the cgroup", metric: "container_spec_memory_limit_bytes", want: 64 << 20},
		{name: "memory+swap limit", metric: "container_spec_memory_swap_limit_bytes", want: 64 << 20},
		{name: "fs capacity", metric: "container_fs_limit_bytes", want: sfs.Blocks * uint64(sfs.Bsize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := findSeries(ctr, tc.metric, labels); got != tc.want {
				t.Fatalf("%s = %d, want %d (series %v)", tc.metric, got, tc.want, ctr[tc.metric])
			}
		})
	}
	if fds := findSeries(ctr, "container_file_descriptors", labels); fds < 2*(3+2) {
		t.Errorf("file descriptors %d, want at least stdio and the pair in both processes", fds)
	}
	started := findSeries(ctr, "container_start_time_seconds", labels)
	if started < uint64(before.Unix()) || started > uint64(time.Now().Unix()) {
		t.Errorf("start time %d, want between %d and now", started, before.Unix())
	}
	usage, peak := findSeries(ctr, "container_memory_usage_bytes", labels), findSeries(ctr, "container_memory_max_usage_bytes", labels)
	if usage == 0 || peak < usage {
		t.Errorf("memory usage %d, max usage %d: want max >= usage > 0", usage, peak)
	}
	if got := findSeries(pod, "container_start_time_seconds", "|pod1|"); got != uint64(before.Unix()) {
		t.Errorf("pod start time %d, want its creation %d", got, before.Unix())
	}
	if got := findSeries(pod, "container_sockets", "|pod1|"); got != 4 {
		t.Errorf("pod sockets %d, want its container's 4", got)
	}
}

// findSeries returns the value of the one series of metric whose label
// values start with prefix (extra labels such as device vary by host).
func findSeries(series map[string]map[string]uint64, metric, prefix string) uint64 {
	for k, v := range series[metric] {
		if strings.HasPrefix(k, prefix) {
			return v
		}
	}
	return 0
}

// The names critest v1.37 expects (cAdvisor's, as the kubelet serves them
// with CRI-O), less the ones it lists as unimplemented by every runtime.
func TestMetricDescriptorsCoverCadvisor(t *testing.T) {
	r, err := (&Server{}).ListMetricDescriptors(context.Background(), &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*runtime.MetricDescriptor{}
	for _, d := range r.Descriptors {
		got[d.Name] = d
	}
	for _, tc := range []struct{ name, extra string }{
		{"container_blkio_device_usage_total", "device,major,minor,operation"},
		{"container_cpu_usage_seconds_total", "cpu"},
		{"container_file_descriptors", ""},
		{"container_fs_inodes_free", "device"},
		{"container_fs_limit_bytes", "device"},
		{"container_fs_reads_bytes_total", "device"},
		{"container_fs_usage_bytes", "device"},
		{"container_fs_writes_total", "device"},
		{"container_memory_failcnt", ""},
		{"container_memory_kernel_usage", ""},
		{"container_memory_mapped_file", ""},
		{"container_memory_max_usage_bytes", ""},
		{"container_processes", ""},
		{"container_sockets", ""},
		{"container_spec_cpu_period", ""},
		{"container_spec_cpu_shares", ""},
		{"container_spec_memory_swap_limit_bytes", ""},
		{"container_start_time_seconds", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := got[tc.name]
			if !ok {
				t.Fatal("no descriptor")
			}
			want := strings.Join(metricLabelKeys, ",")
			if tc.extra != "" {
				want += "," + tc.extra
			}
			if d.Help == "" || strings.Join(d.LabelKeys, ",") != want {
				t.Fatalf("help %q keys %v, want keys %s", d.Help, d.LabelKeys, want)
			}
		})
	}
}
