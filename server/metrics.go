package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// metrics are the runtime's own Prometheus series. Each Server has its own
// registry: nothing global, so tests can run several servers.
type metrics struct {
	reg      *prometheus.Registry
	rpcs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cri_server", Name: "rpc_total",
			Help: "CRI calls by RPC and gRPC status code.",
		}, []string{"rpc", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "cri_server", Name: "rpc_duration_seconds",
			Help: "CRI call latency by RPC.",
			// From 100us (Status, List from memory) to 2 min (image pulls).
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"rpc"}),
	}
	m.reg.MustRegister(m.rpcs, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(rpc string, code codes.Code, d time.Duration) {
	if m == nil { // servers built by hand in tests
		return
	}
	m.rpcs.WithLabelValues(rpc, code.String()).Inc()
	m.duration.WithLabelValues(rpc).Observe(d.Seconds())
}

// startMetrics serves /metrics on addr; "" serves nothing.
func (s *Server) startMetrics(addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	// Registered here, not in newMetrics: it reads the server's state.
	if err := s.metrics.reg.Register(stateCollector{s}); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			lis.Close()
			return nil, fmt.Errorf("register state gauges: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "error", err)
		}
	}()
	s.metricsAddr = lis.Addr().String()
	s.log.Info("serving metrics", "address", s.metricsAddr)
	return func() { hs.Close() }, nil
}
