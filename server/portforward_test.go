package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cri-server/cri-server/errdefs"
)

// newNetNS makes a network namespace with lo up, removed at cleanup.
// Root only.
func newNetNS(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("crit-pf-%d", rand.IntN(1<<30))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del: %v %s", err, out)
		}
		if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
			t.Errorf("netns %s leaked", name)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	return "/run/netns/" + name
}

// echoServerIn listens on 127.0.0.1 inside netns and upper-cases one line.
func echoServerIn(t *testing.T, netns string) int {
	t.Helper()
	var lis net.Listener
	if err := inNetNS(netns, func() (err error) {
		lis, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, strings.ToUpper(line))
			c.Close()
		}
	}()
	return lis.Addr().(*net.TCPAddr).Port
}

func TestPortForwardReachesThePodNamespace(t *testing.T) {
	netns := newNetNS(t)
	port := echoServerIn(t, netns)

	// The host cannot reach it: the listener is in the pod's namespace.
	if c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Skip("port collides with a host listener; rerun")
	}

	client, stream := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- portForward(context.Background(), netns, int32(port), stream) }()
	io.WriteString(client, "hello pod\n")
	got, _ := bufio.NewReader(client).ReadString('\n')
	if got != "HELLO POD\n" {
		t.Fatalf("through port-forward: %q", got)
	}
	client.Close()
	if err := <-errc; err != nil && err != io.EOF && !strings.Contains(err.Error(), "closed") {
		t.Fatalf("portForward: %v", err)
	}
}

func TestPortForwardErrors(t *testing.T) {
	netns := newNetNS(t)
	tests := []struct {
		name  string
		netns string
		port  int32
		want  string
	}{
		{"no listener", netns, 1, "dial localhost:1"},
		{"bad port", netns, 70000, "invalid port"},
		{"missing netns", "/run/netns/does-not-exist", 80, "open netns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s := net.Pipe()
			defer s.Close()
			err := portForward(context.Background(), tt.netns, tt.port, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// Through the whole path the kubelet uses: the PortForward RPC hands out a
// URL, crictl speaks SPDY to the streaming server, bytes reach the pod.
func TestPortForwardWithCrictl(t *testing.T) {
	crictl, err := exec.LookPath("crictl")
	if err != nil {
		t.Skip("crictl not installed (hack/install-tools.sh installs it)")
	}
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
	_, cfg := startServer(t)

	local := 20000 + rand.IntN(20000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, crictl, "-r", "unix://"+cfg.Listen, "port-forward", "pod1", fmt.Sprintf("%d:%d", local, port))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	var c net.Conn
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", local)); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("crictl port-forward never listened: %v", err)
	}
	defer c.Close()
	io.WriteString(c, "via spdy\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := bufio.NewReader(c).ReadString('\n')
	if got != "VIA SPDY\n" {
		t.Fatalf("through crictl port-forward: %q", got)
	}

	out, err := exec.Command(crictl, "-r", "unix://"+cfg.Listen, "port-forward", "nopod", "1:1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NotFound") {
		t.Fatalf("unknown pod: %v %s", err, out)
	}
}

var errNotFoundForTest = errdefs.ErrNotFound
