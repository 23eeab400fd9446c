package server

import (
	"context"
	"testing"

	"github.com/cri-server/cri-server/monitor"
)

func monitorPid(t *testing.T, bundle string) int {
	t.Helper()
	r, err := monitor.Call(context.Background(), bundle, monitor.Request{Op: monitor.OpStatus})
	if err != nil || r.Monitor == 0 {
		t.Fatalf("monitor status: %+v %v", r, err)
	}
	return r.Monitor
}
