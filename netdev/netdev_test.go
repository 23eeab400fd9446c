package netdev

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cri-server/cri-server/errdefs"
)

const sample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0: 1234567     890    1    2    0     0          0         0    76543      21    3    4    0     0       0          0
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Interface
		wantErr bool
	}{
		{name: "lo skipped, eth0 read", in: sample, want: []Interface{{Name: "eth0",
			RxBytes: 1234567, RxPackets: 890, RxErrors: 1, RxDropped: 2,
			TxBytes: 76543, TxPackets: 21, TxErrors: 3, TxDropped: 4}}},
		{name: "headers only", in: strings.Join(strings.Split(sample, "\n")[:2], "\n")},
		{name: "short line", in: "h\nh\n eth0: 1 2 3\n", wantErr: true},
		{name: "no colon", in: "h\nh\n eth0 1 2 3 4 5 6 7 8 9 10 11 12\n", wantErr: true},
		{name: "not a number", in: "h\nh\n eth0: x 2 3 4 5 6 7 8 9 10 11 12\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %+v, want %+v", got[i], tc.want[i])
				}
			}
		})
	}
}

// newNetNS makes a named netns with a veth pair va/vb where va has sent ARP
// requests to b, and removes it at the end.
func newNetNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "netdevtest-" + hex.EncodeToString(b)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", name).Run()
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			t.Errorf("netns %s left behind", name)
		}
	})
	run("ip", "-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	run("ip", "-n", name, "addr", "add", "192.0.2.1/24", "dev", "va")
	run("ip", "-n", name, "link", "set", "va", "up")
	run("ip", "-n", name, "link", "set", "vb", "up")
	// Nobody answers 192.0.2.9: va sends ARP requests, vb receives them.
	// A veth has no carrier for a moment after it comes up (longer on a
	// loaded machine) and drops what is sent meanwhile: send until the
	// counters move.
	run("ip", "netns", "exec", name, "bash", "-c", `for i in $(seq 100); do
		echo hi > /dev/udp/192.0.2.9/9
		if (( $(cat /sys/class/net/va/statistics/tx_packets) > 0 && $(cat /sys/class/net/vb/statistics/rx_packets) > 0 )); then exit 0; fi
		sleep 0.05
	done; echo "va sent nothing vb received in 5s"; exit 1`)
	return "/run/netns/" + name
}

func TestReadInNamespaces(t *testing.T) {
	ns := newNetNS(t)
	before, _ := os.Readlink("/proc/thread-self/ns/net")
	res, err := Read([]string{ns, "/run/netns/does-not-exist-" + t.Name(), ns})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if res[i].Err != nil {
			t.Fatalf("result %d: %v", i, res[i].Err)
		}
		got := map[string]Interface{}
		for _, it := range res[i].Interfaces {
			got[it.Name] = it
		}
		if len(got) != 2 {
			t.Fatalf("result %d: interfaces %+v, want va and vb", i, res[i].Interfaces)
		}
		if a, b := got["va"], got["vb"]; a.TxPackets == 0 || a.TxBytes == 0 || b.RxPackets == 0 || b.RxBytes == 0 {
			t.Errorf("result %d: va sent %d packets (%d bytes), vb received %d (%d bytes)", i, a.TxPackets, a.TxBytes, b.RxPackets, b.RxBytes)
		}
	}
	if !errors.Is(res[1].Err, errdefs.ErrNotFound) {
		t.Errorf("missing netns: err %v, want NotFound", res[1].Err)
	}
	if after, _ := os.Readlink("/proc/thread-self/ns/net"); after != before {
		t.Errorf("caller's netns changed: %s -> %s", before, after)
	}
}

func BenchmarkRead100(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	paths := make([]string, 100)
	for i := range paths {
		paths[i] = "/proc/self/ns/net"
	}
	for b.Loop() {
		if _, err := Read(paths); err != nil {
			b.Fatal(err)
		}
	}
}
