package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/imagesvc"
	"github.com/cri-server/cri-server/oci/cgroups"
)

// The server tests run containers as plain processes (monitortest), with
// no cgroup. statsEnv gives the test pods a cgroup_parent of their own and
// moves a started container's process into the cgroup its spec names, as
// the executor would: the stats then come from the real kernel.
type statsEnv struct {
	*env
	parent string
}

func newStatsEnv(t *testing.T) *statsEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups")
	}
	e := &statsEnv{env: newEnv(t), parent: "/cri-server-stats-test-" + randHex(4)}
	for _, p := range e.pods.pods {
		p.CgroupParent = e.parent
	}
	e.s.stats.layerUsage = func(id string) (imagesvc.Usage, error) {
		return imagesvc.Usage{Mountpoint: "/layers", Bytes: 4096, Inodes: 2}, nil
	}
	return e
}

// inCgroup starts id and moves its process into the cgroup of its spec.
// The cgroup is killed and removed at the end, and checked gone. It returns
// the container process's pid.
func (e *statsEnv) inCgroup(t *testing.T, id string, res *specs.LinuxResources) int {
	t.Helper()
	e.startC(t, id)
	rec, _, err := e.s.ctrs.get(id)
	if err != nil {
		t.Fatal(err)
	}
	path, err := specCgroupsPath(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, e.parent+"/") {
		t.Fatalf("cgroups path %s is not below the pod's %s", path, e.parent)
	}
	m, err := cgroups.New(path)
	if err != nil {
		t.Fatal(err)
	}
	pid := childOf(t, monitorPid(t, rec.Bundle))
	if err := m.Apply(pid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill(unix.SIGKILL)
		for i := 0; i < 200; i++ {
			if pids, _ := m.Pids(); len(pids) == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := m.Destroy(); err != nil {
			t.Errorf("destroy cgroup %s: %v", path, err)
		}
		for ctrl, dir := range m.Paths() {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("cgroup %s left in %q", dir, ctrl)
			}
		}
	})
	if res != nil {
		if err := m.Set(res); err != nil {
			t.Fatal(err)
		}
	}
	return pid
}

// procCPU is the CPU time pid has used, from /proc/<pid>/stat (utime +
// stime, in USER_HZ = 100 ticks): a reference the cgroup figures are held
// against, so a test on a loaded machine checks accuracy, not how much of
// a core the machine could spare.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces), from state on.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// checkRate holds a reported nano-cores figure against the rate pid's own
// CPU time shows over the same interval.
func checkRate(t *testing.T, what string, got uint64, cpu0, cpu1 time.Duration, t0, t1 time.Time) {
	t.Helper()
	want := float64(cpu1-cpu0) / t1.Sub(t0).Seconds()
	// Ticks are 10 ms and the samples are not taken at the same instant
	// as the reads: 25% plus 0.05 core.
	if diff := float64(got) - want; diff > want/4+5e7 || -diff > want/4+5e7 {
		t.Errorf("%s: %d nano cores, its process used %.0f over the same time", what, got, want)
	}
	if want < 5e7 {
		t.Errorf("%s: the burner got only %.0f nano cores: nothing to compare", what, want)
	}
}

// childOf finds the one child of pid (the container's process under the
// plain-process executor).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		for _, task := range tasks {
			b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "children"))
			if f := strings.Fields(string(b)); len(f) > 0 {
				c, _ := strconv.Atoi(f[0])
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has no child", pid)
	return 0
}

func (e *statsEnv) list(t *testing.T, f *runtime.ContainerStatsFilter) map[string]*runtime.ContainerStats {
	t.Helper()
	r, err := e.s.ListContainerStats(context.Background(), &runtime.ListContainerStatsRequest{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*runtime.ContainerStats{}
	for _, s := range r.Stats {
		out[s.Attributes.Id] = s
	}
	return out
}

// A container that burns one CPU reports about one core; one that holds
// 64 MiB reports it in usage, working set and RSS, and its limit minus
// working set as available; created and exited containers are listed
// without cpu and memory.
func TestContainerStatsFromCgroups(t *testing.T) {
	e := newStatsEnv(t)
	burn := e.create(t, "pod1", "burn", nil, "/bin/sh", "-c", "while :; do :; done")
	// It allocates after a second: by then it is in its cgroup (v1 does not
	// move charges made before).
	alloc := e.create(t, "pod1", "alloc", nil, "/usr/bin/perl", "-e", `sleep 1; $x = "a" x (64 << 20); sleep 100`)
	created := e.create(t, "pod1", "created", nil, "/bin/true")
	exited := e.create(t, "pod2", "exited", nil, "/bin/true")
	e.startC(t, exited)
	e.waitExited(t, exited)
	burnPid := e.inCgroup(t, burn, nil)
	limit := int64(256 << 20)
	e.inCgroup(t, alloc, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})

	cpu0, t0 := procCPU(t, burnPid), time.Now()
	first := e.list(t, nil)
	if len(first) != 4 {
		t.Fatalf("listed %d containers, want 4", len(first))
	}
	if first[burn].Cpu.GetUsageNanoCores() != nil {
		t.Errorf("nano cores from a single sample: %v", first[burn].Cpu.UsageNanoCores)
	}
	time.Sleep(2 * time.Second)
	second := e.list(t, nil)
	cpu1, t1 := procCPU(t, burnPid), time.Now()

	cpu := second[burn].GetCpu()
	if cpu.GetTimestamp() == 0 || cpu.GetUsageCoreNanoSeconds().GetValue() < uint64(cpu1*9/10) {
		t.Errorf("burn: cpu %v, its process used %v", cpu, cpu1)
	}
	checkRate(t, "burn", cpu.GetUsageNanoCores().GetValue(), cpu0, cpu1, t0, t1)
	mem := second[alloc].GetMemory()
	for name, v := range map[string]uint64{"usage": mem.GetUsageBytes().GetValue(),
		"working set": mem.GetWorkingSetBytes().GetValue(), "rss": mem.GetRssBytes().GetValue()} {
		if v < 64<<20 || v > 200<<20 {
			t.Errorf("alloc: memory %s %d, want about 64 MiB", name, v)
		}
	}
	if mem.GetPageFaults().GetValue() == 0 {
		t.Errorf("alloc: no page faults")
	}
	if got, want := mem.GetAvailableBytes().GetValue(), uint64(limit)-mem.GetWorkingSetBytes().GetValue(); got != want {
		t.Errorf("alloc: available %d, want limit - working set = %d", got, want)
	}
	if second[burn].GetMemory().GetAvailableBytes() != nil {
		t.Errorf("burn: available set without a limit")
	}
	if second[alloc].GetSwap().GetTimestamp() == 0 {
		t.Errorf("alloc: no swap stats")
	}
	for _, id := range []string{created, exited} {
		s := second[id]
		if s.Cpu != nil || s.Memory != nil {
			t.Errorf("%s: cpu %v memory %v, want none without a cgroup", s.Attributes.Metadata.Name, s.Cpu, s.Memory)
		}
		if s.WritableLayer.GetUsedBytes().GetValue() != 4096 || s.Attributes.Metadata.Name == "" {
			t.Errorf("%s: attributes %v layer %v", id, s.Attributes, s.WritableLayer)
		}
	}

	one, err := e.s.ContainerStats(context.Background(), &runtime.ContainerStatsRequest{ContainerId: burn[:12]})
	if err != nil || one.Stats.Attributes.Id != burn || one.Stats.Cpu == nil || one.Stats.Memory.GetTimestamp() == 0 {
		t.Errorf("ContainerStats by prefix: %v, %v", one, err)
	}
}

func TestContainerStatsFilters(t *testing.T) {
	e := newStatsEnv(t)
	a := e.create(t, "pod1", "a", map[string]string{"app": "web", "tier": "front"}, "/bin/true")
	b := e.create(t, "pod1", "b", map[string]string{"app": "web"}, "/bin/true")
	c := e.create(t, "pod2", "c", map[string]string{"app": "db"}, "/bin/true")
	for _, tc := range []struct {
		name   string
		filter *runtime.ContainerStatsFilter
		want   []string
	}{
		{name: "nil", want: []string{a, b, c}},
		{name: "empty", filter: &runtime.ContainerStatsFilter{}, want: []string{a, b, c}},
		{name: "id", filter: &runtime.ContainerStatsFilter{Id: b}, want: []string{b}},
		{name: "id prefix", filter: &runtime.ContainerStatsFilter{Id: c[:10]}, want: []string{c}},
		{name: "pod", filter: &runtime.ContainerStatsFilter{PodSandboxId: "pod1"}, want: []string{a, b}},
		{name: "label", filter: &runtime.ContainerStatsFilter{LabelSelector: map[string]string{"app": "web"}}, want: []string{a, b}},
		{name: "labels all match", filter: &runtime.ContainerStatsFilter{LabelSelector: map[string]string{"app": "web", "tier": "front"}}, want: []string{a}},
		{name: "label value differs", filter: &runtime.ContainerStatsFilter{LabelSelector: map[string]string{"app": "baz"}}},
		{name: "label and pod", filter: &runtime.ContainerStatsFilter{PodSandboxId: "pod2", LabelSelector: map[string]string{"app": "web"}}},
		{name: "unknown id", filter: &runtime.ContainerStatsFilter{Id: "ffff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for id := range e.list(t, tc.filter) {
				got = append(got, id)
			}
			sort.Strings(got)
			want := append([]string(nil), tc.want...)
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestContainerStatsErrors(t *testing.T) {
	e := newStatsEnv(t)
	for _, tc := range []struct {
		name string
		id   string
		want error
	}{
		{name: "unknown", id: "0123456789abcdef", want: errdefs.ErrNotFound},
		{name: "empty", id: "", want: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.ContainerStats(context.Background(), &runtime.ContainerStatsRequest{ContainerId: tc.id})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}
