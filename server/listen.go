package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs"
)

// drainTimeout bounds how long a SIGTERM waits for in-flight RPCs; after it
// the remaining ones are cut, since the kubelet retries them anyway.
const drainTimeout = 10 * time.Second

// lockState takes an exclusive lock on the state dir for this daemon's life,
// so that a second cri-server on the same dirs fails (within lockWait)
// instead of fighting the first over sockets, namespaces and exit files.
func lockState(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "cri-server.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock state dir: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errdefs.FailedPrecondition("another cri-server holds the state dir %s", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockWait is how long a start waits for the state dir lock. A daemon
// killed -9 while it forks a monitor or a pod init leaves the child holding
// the lock's open file until its exec closes it (CLOEXEC), tens of ms on a
// loaded node: the restart must not fail for it. Waiting also means the
// start-up sweep runs only once every such child has exec'd and can be
// told by its argv and environment.
var lockWait = 5 * time.Second

// Listen opens the CRI socket. A socket file left by a crashed daemon is
// replaced; one that still answers belongs to a live server and is an error,
// never a takeover.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, errdefs.FailedPrecondition("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, errdefs.FailedPrecondition("socket %s is served by a live process", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("probe socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return lis, nil
}

// testHookNew lets tests set backends on the server before it serves.
var testHookNew func(*Server)

// Run serves the CRI until ctx is cancelled, then drains in-flight RPCs.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) error {
	lock, err := lockState(cfg.State)
	if err != nil {
		return err
	}
	defer lock.Close()
	for _, d := range []string{cfg.Root} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create root dir: %w", err)
		}
	}
	srv, err := New(ctx, cfg, log, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	if testHookNew != nil {
		testHookNew(srv)
	}
	stopStreaming, err := srv.startStreaming(cfg.Streaming)
	if err != nil {
		return err
	}
	defer stopStreaming()
	stopMetrics, err := srv.startMetrics(cfg.Metrics.Address)
	if err != nil {
		return err
	}
	defer stopMetrics()
	lis, err := Listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Listen)

	g := grpc.NewServer(
		grpc.UnaryInterceptor(srv.UnaryInterceptor),
		grpc.StreamInterceptor(srv.StreamInterceptor),
		// The kubelet's own limit: ListContainers at density is large.
		grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20),
	)
	runtime.RegisterRuntimeServiceServer(g, srv)
	runtime.RegisterImageServiceServer(g, srv)

	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	log.Info("serving CRI", "socket", cfg.Listen, "root", cfg.Root, "state", cfg.State)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight RPCs", "timeout", drainTimeout)
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		log.Warn("drain timed out; stopping")
		g.Stop()
	}
	log.Info("stopped")
	return nil
}
