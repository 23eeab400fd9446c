package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// startPortForwardServer serves a pod "pod1" whose netns holds the echo
// server, and returns a runtime client and the echo server's port.
func startPortForwardServer(t *testing.T) (runtime.RuntimeServiceClient, int) {
	t.Helper()
	netns := newNetNS(t)
	port := echoServerIn(t, netns)
	testHookNew = func(s *Server) {
		s.podNetNS = func(id string) (string, error) {
			if id != "pod1" {
				return "", fmt.Errorf("pod %s: %w", id, errNotFoundForTest)
			}
			return netns, nil
		}
	}
	t.Cleanup(func() { testHookNew = nil })
	conn, _ := startServer(t)
	return runtime.NewRuntimeServiceClient(conn), port
}

func portForwardURL(t *testing.T, rt runtime.RuntimeServiceClient, port int) *url.URL {
	t.Helper()
	resp, err := rt.PortForward(context.Background(), &runtime.PortForwardRequest{PodSandboxId: "pod1", Port: []int32{int32(port)}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	u, err := url.Parse(resp.GetUrl())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Both transports client-go has, as kubectl and critest use them: plain
// SPDY, and SPDY tunneled over websocket (critest -websocket-portforward).
// Two connections go through one session, so the tunnel multiplexes.
func TestPortForwardWithClientGo(t *testing.T) {
	rt, port := startPortForwardServer(t)
	cfg := &rest.Config{}
	tests := []struct {
		name   string
		dialer func(*url.URL) (streamhttp.Dialer, error)
	}{
		{"spdy", func(u *url.URL) (streamhttp.Dialer, error) {
			tr, up, err := spdy.RoundTripperFor(cfg)
			if err != nil {
				return nil, err
			}
			return spdy.NewDialerForStreaming(up, &http.Client{Transport: tr}, http.MethodPost, u), nil
		}},
		{"spdy over websocket", func(u *url.URL) (streamhttp.Dialer, error) {
			return portforward.NewSPDYOverWebsocketDialerForStreaming(u, cfg)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.dialer(portForwardURL(t, rt, port))
			if err != nil {
				t.Fatal(err)
			}
			stop, ready := make(chan struct{}), make(chan struct{})
			pf, err := portforward.NewOnAddressesForStreaming(d, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- pf.ForwardPorts() }()
			select {
			case <-ready:
			case err := <-errc:
				t.Fatalf("ForwardPorts: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("port forward never became ready")
			}
			ports, err := pf.GetPorts()
			if err != nil || len(ports) != 1 {
				t.Fatalf("GetPorts: %v %v", ports, err)
			}
			for _, msg := range []string{"first " + tt.name, "second " + tt.name} {
				if got := echoVia(t, ports[0].Local, msg); got != strings.ToUpper(msg) {
					t.Errorf("through port-forward: %q, want %q", got, strings.ToUpper(msg))
				}
			}
			close(stop)
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("ForwardPorts after stop: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("ForwardPorts did not return after stop")
			}
			waitNoGoroutine(t, "portforward.(*httpStreamHandler).run")
		})
	}
}

// waitNoGoroutine fails unless, soon after the client went away, no
// goroutine of the streaming server is still in fn: a session the server
// never ends leaks its goroutines and the pod-side connections.
func waitNoGoroutine(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for i := 0; i < 100; i++ {
		n := goruntime.Stack(buf, true)
		if !strings.Contains(string(buf[:n]), fn) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("a goroutine is still in %s after the client left", fn)
}

// echoVia sends one line to the local end of the forward and reads the
// pod's answer.
func echoVia(t *testing.T, local uint16, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", local), 5*time.Second)
	if err != nil {
		t.Fatalf("dial forwarded port: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, msg+"\n")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read through port-forward: %v", err)
	}
	return strings.TrimSuffix(got, "\n")
}

// A websocket handshake asking for a tunneled protocol the server does not
// speak is refused before any port is dialed; a tunneling request on a
// consumed token is not found.
func TestPortForwardTunnelRefused(t *testing.T) {
	rt, port := startPortForwardServer(t)
	tests := []struct {
		name     string
		protocol string
		reuse    bool
		want     int
	}{
		{"unknown tunneled protocol", "SPDY/3.1+v9.portforward.k8s.io", false, http.StatusForbidden},
		{"token already used", "SPDY/3.1+portforward.k8s.io", true, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := portForwardURL(t, rt, port)
			if tt.reuse {
				wsHandshake(t, u, "SPDY/3.1+v9.portforward.k8s.io")
			}
			if got := wsHandshake(t, u, tt.protocol); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
}

// wsHandshake sends a websocket upgrade request and returns the status.
func wsHandshake(t *testing.T, u *url.URL, protocol string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")))
	req.Header.Set("Sec-WebSocket-Protocol", protocol)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
