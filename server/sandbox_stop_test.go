package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStopReleasesNetworkRemoveDropsTheRest: what the kubelet counts on
// after each call. After StopPodSandbox the pod's IP is free in IPAM, its
// veth is off the bridge and no iptables rule (masquerade, hostPort) names
// it; after RemovePodSandbox its namespaces are unpinned, its init (shared
// PID) is gone and its dir is removed. Both calls repeat harmlessly.
func TestStopReleasesNetworkRemoveDropsTheRest(t *testing.T) {
	tests := []struct {
		name     string
		hostPort bool
		sharePID bool
	}{
		{name: "default pod"},
		{name: "with a hostPort", hostPort: true},
		{name: "shared PID namespace", sharePID: true},
	}
	e := newPodEnv(t)
	e.masq = true // the default conflists' masquerade rules, to see them go
	e.conflist()
	e.start()
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := podConfig("stop-" + randHex(3))
			var port int32
			if tc.hostPort {
				port = freePort(t)
				cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: port}}
			}
			if tc.sharePID {
				cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
			}
			id := e.run(cfg)
			st, info := e.status(id)
			ip, netns := st.Network.Ip, info["netns"].(string)
			initPID := 0
			if tc.sharePID {
				initPID = int(info["pid"].(float64))
			}
			rules := func() []string {
				out, _ := exec.Command("iptables-save").Output()
				var found []string
				for _, l := range bytes.Split(out, []byte("\n")) {
					if bytes.Contains(l, []byte(id)) || bytes.Contains(l, []byte(ip+"/")) || bytes.Contains(l, []byte(ip+" ")) ||
						(port != 0 && bytes.Contains(l, []byte(fmt.Sprintf("--dport %d ", port)))) {
						found = append(found, string(l))
					}
				}
				return found
			}
			if len(rules()) == 0 || len(e.heldIPs()) != 1 {
				t.Fatalf("running pod: rules %q, IPs held %v: the checks below would prove nothing", rules(), e.heldIPs())
			}
			for i := range 2 {
				if _, err := e.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
					t.Fatalf("StopPodSandbox #%d: %v", i+1, err)
				}
				if ips := e.heldIPs(); len(ips) != 0 {
					t.Errorf("after stop #%d host-local holds %v", i+1, ips)
				}
				if ents, _ := os.ReadDir(filepath.Join("/sys/class/net", e.bridge, "brif")); len(ents) != 0 {
					t.Errorf("after stop #%d %d veths on the bridge", i+1, len(ents))
				}
				if r := rules(); len(r) != 0 {
					t.Errorf("after stop #%d iptables still has %q", i+1, r)
				}
				if st, _ := e.status(id); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
					t.Errorf("after stop #%d state %v", i+1, st.State)
				}
			}
			for i := range 2 {
				if _, err := e.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
					t.Fatalf("RemovePodSandbox #%d: %v", i+1, err)
				}
			}
			var sfs unix.Statfs_t
			if err := unix.Statfs(netns, &sfs); err == nil {
				t.Errorf("netns %s still there after remove (fs type %#x)", netns, sfs.Type)
			}
			if _, err := os.Stat(filepath.Dir(netns)); !os.IsNotExist(err) {
				t.Errorf("pod dir %s still there: %v", filepath.Dir(netns), err)
			}
			if initPID > 0 {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", initPID)); err == nil && bytes.Contains(b, []byte("pod-init")) {
					t.Errorf("pod init %d still running after remove", initPID)
				}
			}
		})
	}
}
