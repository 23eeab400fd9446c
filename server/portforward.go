package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// portForward connects to localhost:port inside the pod's network namespace
// (netns "" is the host's, for host-network pods) and copies bytes both ways
// until either side closes.
func portForward(ctx context.Context, netns string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("port forward: invalid port %d", port)
	}
	conn, err := dialInNetNS(netns, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		// Half-close so that the pod's server sees EOF and can answer.
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return err
}

// dialInNetNS opens a TCP connection from inside netns. A socket belongs to
// the namespace of the thread that created it, so the dial runs on a locked
// thread that has joined netns; the connection keeps working after the
// thread returns to the host namespace. IPv4 first, then IPv6, as the
// kubelet's "localhost" means either.
func dialInNetNS(netns string, port int32) (net.Conn, error) {
	p := strconv.Itoa(int(port))
	dial := func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", p), 5*time.Second)
		if err != nil {
			c6, err6 := net.DialTimeout("tcp6", net.JoinHostPort("::1", p), 5*time.Second)
			if err6 == nil {
				return c6, nil
			}
			return nil, fmt.Errorf("port forward: dial localhost:%s in the pod: %w", p, err)
		}
		return c, nil
	}
	if netns == "" {
		return dial()
	}
	var conn net.Conn
	err := inNetNS(netns, func() error {
		var err error
		conn, err = dial()
		return err
	})
	return conn, err
}

// inNetNS runs fn on a locked OS thread inside the network namespace at
// path. If the thread cannot return to its own namespace it is left locked,
// and Go ends it when the goroutine exits, so no other goroutine ever runs
// in the pod's namespace by accident.
func inNetNS(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			goruntime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			errc <- fmt.Errorf("join netns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
			goruntime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
