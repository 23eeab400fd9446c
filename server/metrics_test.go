package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMetricsCountRPCs(t *testing.T) {
	var srv *Server
	testHookNew = func(s *Server) { srv = s }
	t.Cleanup(func() { testHookNew = nil })
	conn, _ := startServer(t)
	rs := runtime.NewRuntimeServiceClient(conn)
	for i := 0; i < 3; i++ {
		rs.Version(context.Background(), &runtime.VersionRequest{})
	}
	rs.CheckpointPod(context.Background(), &runtime.CheckpointPodRequest{})
	resp, err := http.Get("http://" + srv.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`cri_server_rpc_total{code="OK",rpc="Version"} 3`,
		`cri_server_rpc_total{code="Unimplemented",rpc="CheckpointPod"} 1`,
		`cri_server_rpc_duration_seconds_count{rpc="Version"} 3`,
		`go_goroutines`,
		`cri_server_pods{state="ready"} 0`,
		`cri_server_containers{state="running"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
