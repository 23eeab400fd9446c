package cni

import (
	"net"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

func TestToResultOrdersIPv4FirstAndSkipsHostSide(t *testing.T) {
	host, pod := 0, 1
	r := &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{{Name: "veth1"}, {Name: "eth0", Sandbox: "/run/netns/x"}},
		IPs: []*types100.IPConfig{
			{Interface: &pod, Address: net.IPNet{IP: net.ParseIP("fd00::5"), Mask: net.CIDRMask(64, 128)}},
			{Interface: &host, Address: net.IPNet{IP: net.ParseIP("10.9.0.1"), Mask: net.CIDRMask(24, 32)}},
			{Interface: &pod, Address: net.IPNet{IP: net.ParseIP("10.9.0.5").To4(), Mask: net.CIDRMask(24, 32)}},
		},
	}
	got, err := toResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.IPs) != 2 || got.IPs[0] != "10.9.0.5" || got.IPs[1] != "fd00::5" {
		t.Fatalf("IPs %v, want [10.9.0.5 fd00::5]", got.IPs)
	}
	if len(got.Raw) == 0 {
		t.Error("raw result empty")
	}
}

func TestRuntimeConfArgs(t *testing.T) {
	a := &Attachment{ID: "abc", NetNS: "/ns", Namespace: "ns1", Name: "p", UID: "u1",
		PortMappings: []PortMapping{{HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}}
	rt := a.runtimeConf()
	want := map[string]string{"K8S_POD_NAMESPACE": "ns1", "K8S_POD_NAME": "p", "K8S_POD_INFRA_CONTAINER_ID": "abc", "K8S_POD_UID": "u1"}
	for _, kv := range rt.Args {
		if v, ok := want[kv[0]]; ok && v == kv[1] {
			delete(want, kv[0])
		}
	}
	if len(want) != 0 || rt.IfName != "eth0" || rt.CapabilityArgs["portMappings"] == nil {
		t.Fatalf("runtime conf %+v misses %v", rt, want)
	}
}
