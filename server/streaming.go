package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs"
)

// Streamer runs exec and attach sessions for the streaming server. The
// containers code implements it; until it is wired, Exec and Attach answer
// Unimplemented rather than hand out URLs that cannot work.
type Streamer interface {
	// CheckStreamable fails unless containerID exists and is running.
	CheckStreamable(containerID string) error
	ExecStream(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error
	AttachStream(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error
}

// PodNetNS finds the network namespace a port-forward dials from: its path,
// or "" for a host-network pod. Fails with NotFound for an unknown pod.
type PodNetNS func(podID string) (string, error)

// streamRuntime adapts the streaming library's callbacks to our backends.
type streamRuntime struct{ s *Server }

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.streamer.ExecStream(ctx, id, cmd, in, out, errw, tty, resize)
}

func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.s.streamer.AttachStream(ctx, id, in, out, errw, tty, resize)
}

func (r streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	netns, err := r.s.podNetNS(podID)
	if err != nil {
		return err
	}
	return portForward(ctx, netns, port, stream)
}

// startStreaming listens on the configured address and serves the streaming
// library's handler. With port 0 the URLs carry the port really bound.
func (s *Server) startStreaming(cfg config.Streaming) (stop func(), err error) {
	lis, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen for streaming on %s: %w", cfg.Address, err)
	}
	tls := cfg.TLSCertFile != ""
	base := &url.URL{Scheme: "http", Host: lis.Addr().String()}
	if tls {
		base.Scheme = "https"
	}
	sc := streaming.DefaultConfig
	sc.Addr = lis.Addr().String()
	sc.BaseURL = base
	ss, err := streaming.NewServer(sc, streamRuntime{s})
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("create streaming server: %w", err)
	}
	hs := &http.Server{Handler: ss}
	go func() {
		var err error
		if tls {
			err = hs.ServeTLS(lis, cfg.TLSCertFile, cfg.TLSKeyFile)
		} else {
			err = hs.Serve(lis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("streaming server stopped", "error", err)
		}
	}()
	s.stream = ss
	s.log.Info("serving streams", "url", base.String())
	return func() { hs.Close() }, nil
}

// Exec returns the URL of an exec session. The kubelet (or crictl) then
// connects to it over SPDY or websocket.
func (s *Server) Exec(ctx context.Context, r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if s.streamer == nil {
		return nil, errdefs.Unimplemented("Exec: containers are not wired to the streaming server yet")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errdefs.InvalidArgument("exec: cmd is empty")
	}
	if err := s.streamer.CheckStreamable(r.GetContainerId()); err != nil {
		return nil, err
	}
	resp, err := s.stream.GetExec(r)
	return resp, streamErr(err)
}

// Attach returns the URL of an attach session to the container's stdio.
func (s *Server) Attach(ctx context.Context, r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if s.streamer == nil {
		return nil, errdefs.Unimplemented("Attach: containers are not wired to the streaming server yet")
	}
	if err := s.streamer.CheckStreamable(r.GetContainerId()); err != nil {
		return nil, err
	}
	resp, err := s.stream.GetAttach(r)
	return resp, streamErr(err)
}

// PortForward returns the URL of a port-forward session into the pod's
// network namespace.
func (s *Server) PortForward(ctx context.Context, r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if s.podNetNS == nil {
		return nil, errdefs.Unimplemented("PortForward: pods are not wired to the streaming server yet")
	}
	if _, err := s.podNetNS(r.GetPodSandboxId()); err != nil {
		return nil, err
	}
	resp, err := s.stream.GetPortForward(r)
	return resp, streamErr(err)
}

// streamErr classifies the library's validation errors (missing stdio,
// tty with stderr) as the caller's mistake.
func streamErr(err error) error {
	if err == nil {
		return nil
	}
	return errdefs.InvalidArgument("%v", err)
}
