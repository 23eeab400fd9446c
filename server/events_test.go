package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Two kubelets (evented PLEG) subscribe over gRPC; both see the whole
// life of a container, in order, with the pod status attached.
func TestGetContainerEventsOverGRPC(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "cri.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(e.s.UnaryInterceptor), grpc.StreamInterceptor(e.s.StreamInterceptor))
	runtime.RegisterRuntimeServiceServer(g, e.s)
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rs := runtime.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var streams []runtime.RuntimeService_GetContainerEventsClient
	for i := 0; i < 2; i++ {
		st, err := rs.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	for { // wait until both are subscribed server-side
		e.s.events.mu.Lock()
		n := len(e.s.events.subs)
		e.s.events.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	id := e.create(t, "pod1", "ev", nil, "/bin/sh", "-c", "exit 0")
	e.startC(t, id)
	e.waitExited(t, id)
	if _, err := rs.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	want := []runtime.ContainerEventType{runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerEventType_CONTAINER_DELETED_EVENT}
	for i, st := range streams {
		for _, w := range want {
			ev, err := st.Recv()
			if err != nil {
				t.Fatalf("subscriber %d: %v", i, err)
			}
			if ev.ContainerEventType != w || ev.ContainerId != id || ev.PodSandboxStatus.GetId() != "pod1" {
				t.Fatalf("subscriber %d: got %s for %s, want %s", i, ev.ContainerEventType, ev.ContainerId, w)
			}
		}
	}
}
