package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/config"
)

// startServer runs the daemon on temp dirs and returns a client connection.
func startServer(t *testing.T) (*grpc.ClientConn, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Root = filepath.Join(dir, "root")
	cfg.State = filepath.Join(dir, "state")
	cfg.Listen = filepath.Join(dir, "state", "cri.sock")
	cfg.CNI.ConfDir = filepath.Join(dir, "net.d")
	cfg.Metrics.Address = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if _, err := os.Stat(cfg.Listen); !os.IsNotExist(err) {
			t.Errorf("socket left behind after shutdown: %v", err)
		}
	})
	waitSocket(t, cfg.Listen, done)
	conn, err := grpc.NewClient("unix://"+cfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, cfg
}

func waitSocket(t *testing.T, path string, done chan error) {
	t.Helper()
	for i := 0; i < 200; i++ {
		select {
		case err := <-done:
			t.Fatalf("server exited early: %v", err)
		default:
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("socket %s never answered", path)
}

func TestVersion(t *testing.T) {
	conn, _ := startServer(t)
	v, err := runtime.NewRuntimeServiceClient(conn).Version(context.Background(), &runtime.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "cri-server" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("version: %+v", v)
	}
}

func TestStatusNetworkReadyFollowsConfDir(t *testing.T) {
	conn, cfg := startServer(t)
	rs := runtime.NewRuntimeServiceClient(conn)
	cond := func() (rt, net *runtime.RuntimeCondition) {
		st, err := rs.Status(context.Background(), &runtime.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Status.Conditions {
			switch c.Type {
			case runtime.RuntimeReady:
				rt = c
			case runtime.NetworkReady:
				net = c
			}
		}
		return rt, net
	}
	rt, nw := cond()
	if !rt.Status {
		t.Fatalf("RuntimeReady false: %v", rt)
	}
	if nw.Status || nw.Reason != reasonNetworkNotReady || !strings.Contains(nw.Message, "cni config") {
		t.Fatalf("NetworkReady with no config: %+v", nw)
	}
	// A config written while running is picked up without a restart.
	if err := os.MkdirAll(cfg.CNI.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"bridge"}]}`
	if err := os.WriteFile(filepath.Join(cfg.CNI.ConfDir, "10-t.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, nw = cond(); !nw.Status {
		t.Fatalf("NetworkReady after writing a conflist: %+v", nw)
	}
	st, err := rs.Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil || !strings.Contains(st.Info["config"], cfg.Root) {
		t.Fatalf("verbose status lacks the config: %v %v", err, st.GetInfo())
	}
}

func TestRuntimeConfigAndPodCIDR(t *testing.T) {
	conn, _ := startServer(t)
	rs := runtime.NewRuntimeServiceClient(conn)
	rc, err := rs.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig: %v %v", rc, err)
	}
	upd := func(cidr string) error {
		_, err := rs.UpdateRuntimeConfig(context.Background(), &runtime.UpdateRuntimeConfigRequest{
			RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}}})
		return err
	}
	if err := upd("10.244.1.0/24,fd00:1::/64"); err != nil {
		t.Fatal(err)
	}
	st, err := rs.Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil || st.Info["podCIDR"] != "10.244.1.0/24,fd00:1::/64" {
		t.Fatalf("pod CIDR not recorded: %v %v", st.GetInfo(), err)
	}
	if err := upd("not-a-cidr"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad CIDR: %v", err)
	}
}

// Every RPC of the API must be registered: implemented, or Unimplemented
// naming the RPC. Never "unknown service".
func TestEveryRPCRegistered(t *testing.T) {
	conn, _ := startServer(t)
	for _, sd := range []grpc.ServiceDesc{runtime.RuntimeService_ServiceDesc, runtime.ImageService_ServiceDesc} {
		n := len(sd.Methods) + len(sd.Streams)
		t.Logf("%s: %d RPCs", sd.ServiceName, n)
		for _, m := range sd.Methods {
			err := conn.Invoke(context.Background(), "/"+sd.ServiceName+"/"+m.MethodName, &runtime.VersionRequest{}, new(runtime.VersionResponse))
			if status.Code(err) == codes.Unimplemented && !strings.Contains(status.Convert(err).Message(), m.MethodName) {
				t.Errorf("%s: Unimplemented without naming the RPC: %v", m.MethodName, err)
			}
			if strings.Contains(status.Convert(err).Message(), "unknown service") {
				t.Errorf("%s not registered", m.MethodName)
			}
		}
	}
	if n := len(runtime.RuntimeService_ServiceDesc.Methods) + len(runtime.RuntimeService_ServiceDesc.Streams) +
		len(runtime.ImageService_ServiceDesc.Methods) + len(runtime.ImageService_ServiceDesc.Streams); n != 43 {
		t.Errorf("the API has %d RPCs, the issue counts 43", n)
	}
}

func TestSecondServerRefused(t *testing.T) {
	_, cfg := startServer(t)
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 100 * time.Millisecond
	// Same state dir: the lock refuses it.
	err := Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "another cri-server") {
		t.Fatalf("second daemon on the same state: %v", err)
	}
	// Other state dir, same live socket: not taken over.
	if _, err := Listen(cfg.Listen); err == nil || !strings.Contains(err.Error(), "live") {
		t.Fatalf("live socket taken over: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nobody listens: a crashed daemon's socket
	l2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l2.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	// A regular file in the way is not removed.
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Listen(f); err == nil {
		t.Fatal("a non-socket file was replaced")
	}
}
