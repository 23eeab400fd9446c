package server

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/errdefs/grpcerr"
	"github.com/cri-server/cri-server/oci/cgroups"
)

// A pod's stats carry its attributes, the counters of eth0 in its pinned
// network namespace (which has no process in it), and cpu, memory and
// process counts; filters select pods; a stopped pod is left out.
func TestPodSandboxStats(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	ctx := context.Background()
	a := e.run(podConfig("stats-a"))
	b := e.run(podConfig("stats-b"))
	_, info := e.status(a)
	netns := info["netns"].(string)
	// Traffic from inside the pod: the gateway is the bridge's .1.
	if out, err := exec.Command("nsenter", "--net="+netns, "bash", "-c", "echo hi > /dev/udp/"+e.subnet+".1/9").CombinedOutput(); err != nil {
		t.Fatalf("send from pod: %v: %s", err, out)
	}

	r, err := e.rt.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: a})
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stats
	if st.Attributes.Id != a || st.Attributes.Metadata.Name != "stats-a" || st.Attributes.Labels["app"] != "stats-a" {
		t.Errorf("attributes %v", st.Attributes)
	}
	l := st.Linux
	eth0 := l.GetNetwork().GetDefaultInterface()
	if eth0.GetName() != "eth0" || eth0.GetTxBytes().GetValue() == 0 || eth0.GetRxBytes() == nil {
		t.Errorf("network %v, want eth0 with the bytes sent", l.GetNetwork())
	}
	for _, it := range l.GetNetwork().GetInterfaces() {
		if it.Name == "lo" {
			t.Errorf("lo reported")
		}
	}
	if l.GetCpu().GetTimestamp() == 0 || l.GetMemory().GetTimestamp() == 0 || l.GetProcess().GetProcessCount() == nil {
		t.Errorf("cpu %v memory %v process %v", l.GetCpu(), l.GetMemory(), l.GetProcess())
	}

	e.stopRemove(b)
	b = e.run(podConfig("stats-b"))
	if _, err := e.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}
	c := e.run(podConfig("stats-c"))
	for _, tc := range []struct {
		name   string
		filter *runtime.PodSandboxStatsFilter
		want   []string
	}{
		{name: "nil: ready pods only", want: []string{a, c}},
		{name: "id", filter: &runtime.PodSandboxStatsFilter{Id: c}, want: []string{c}},
		{name: "id prefix", filter: &runtime.PodSandboxStatsFilter{Id: a[:8]}, want: []string{a}},
		{name: "label", filter: &runtime.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "stats-c"}}, want: []string{c}},
		{name: "label mismatch", filter: &runtime.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "nope"}}},
		{name: "stopped pod by id", filter: &runtime.PodSandboxStatsFilter{Id: b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.rt.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, s := range r.Stats {
				got[s.Attributes.Id] = true
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for _, id := range tc.want {
				if !got[id] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}

	stream, err := e.rt.StreamPodSandboxStats(ctx, &runtime.StreamPodSandboxStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	streamed := 0
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		streamed += len(m.PodSandboxStats)
	}
	if streamed != 2 {
		t.Errorf("StreamPodSandboxStats sent %d pods, want the 2 ready ones", streamed)
	}
	cs, err := e.rt.StreamContainerStats(ctx, &runtime.StreamContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := cs.Recv(); err != io.EOF {
		t.Errorf("StreamContainerStats without containers: %v, %v; want EOF", m, err)
	}

	mr, err := e.rt.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var sent uint64
	for _, pm := range mr.PodMetrics {
		if pm.PodSandboxId == b {
			t.Errorf("metrics of the stopped pod")
		}
		if pm.PodSandboxId != a {
			continue
		}
		series := checkMetrics(t, pm.Metrics)
		sent = series["container_network_transmit_bytes_total"]["|"+a+"||"+a+"|crit|stats-a|eth0|"]
	}
	if sent == 0 {
		t.Errorf("no eth0 bytes sent in pod %s's metrics", a)
	}

	_, err = e.rt.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: "0123456789abcdef"})
	if !errors.Is(grpcerr.FromGRPC(err), errdefs.ErrNotFound) {
		t.Errorf("unknown pod: %v, want NotFound", err)
	}
	_, err = e.rt.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{})
	if !errors.Is(grpcerr.FromGRPC(err), errdefs.ErrInvalidArgument) {
		t.Errorf("empty id: %v, want InvalidArgument", err)
	}
}

// A pod with a cgroup_parent reports that cgroup: a process burning one
// CPU in it shows as about one core, and the process count includes it.
func TestPodStatsFromPodCgroup(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	ctx := context.Background()
	cfg := podConfig("stats-cg")
	parent := "/cri-server-stats-test-" + randHex(4)
	cfg.Linux.CgroupParent = parent + "/pod1"
	id := e.run(cfg)
	m, err := cgroups.New(cfg.Linux.CgroupParent)
	if err != nil {
		t.Fatal(err)
	}
	burn := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := burn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		burn.Process.Kill()
		burn.Wait()
		e.stopRemove(id)
		if err := m.Destroy(); err != nil {
			t.Errorf("destroy %s: %v", cfg.Linux.CgroupParent, err)
		}
		for _, c := range []string{"cpuacct", "memory", "cpu", "pids"} {
			os.Remove(filepath.Join("/sys/fs/cgroup", c, parent))
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, parent)); err == nil {
				t.Errorf("cgroup %s left in %s", parent, c)
			}
		}
	})
	if err := m.Apply(burn.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stats := func() *runtime.LinuxPodSandboxStats {
		t.Helper()
		r, err := e.rt.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: id})
		if err != nil {
			t.Fatal(err)
		}
		return r.Stats.Linux
	}
	cpu0, t0 := procCPU(t, burn.Process.Pid), time.Now()
	stats()
	time.Sleep(1500 * time.Millisecond)
	l := stats()
	cpu1, t1 := procCPU(t, burn.Process.Pid), time.Now()
	checkRate(t, "pod", l.GetCpu().GetUsageNanoCores().GetValue(), cpu0, cpu1, t0, t1)
	// v1 leaves a moved process's memory charged where it was: only the
	// read itself is checked here (the container test checks the bytes).
	if l.GetMemory().GetTimestamp() == 0 || l.GetProcess().GetProcessCount().GetValue() < 1 {
		t.Errorf("pod: memory %v, process %v", l.GetMemory(), l.GetProcess())
	}
}
