package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

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
