package server

import (
	"github.com/prometheus/client_golang/prometheus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/sandbox"
)

// stateCollector publishes pods and containers by state, counted from
// memory at scrape time: no gauge to keep in step with every transition.
type stateCollector struct{ s *Server }

var (
	podsDesc = prometheus.NewDesc("cri_server_pods", "Pods by state.", []string{"state"}, nil)
	ctrsDesc = prometheus.NewDesc("cri_server_containers", "Containers by state.", []string{"state"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- ctrsDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.pods != nil {
		n := map[sandbox.State]int{sandbox.StateReady: 0, sandbox.StateNotReady: 0}
		for _, p := range c.s.pods.List() {
			n[p.State]++
		}
		for st, v := range n {
			ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(v), string(st))
		}
	}
	if c.s.ctrs != nil {
		n := map[runtime.ContainerState]int{runtime.ContainerState_CONTAINER_CREATED: 0,
			runtime.ContainerState_CONTAINER_RUNNING: 0, runtime.ContainerState_CONTAINER_EXITED: 0}
		for _, rec := range c.s.ctrs.list() {
			n[rec.Status.State]++
		}
		for st, v := range n {
			ch <- prometheus.MustNewConstMetric(ctrsDesc, prometheus.GaugeValue, float64(v), containerStateName(st))
		}
	}
}

// containerStateName turns CONTAINER_RUNNING into "running".
func containerStateName(st runtime.ContainerState) string {
	switch st {
	case runtime.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtime.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtime.ContainerState_CONTAINER_EXITED:
		return "exited"
	}
	return "unknown"
}
