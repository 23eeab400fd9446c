package server

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
)

// Run with hack/bench-pods.sh. Each reports p50/p95 per pod in ms as
// custom metrics; ns/op is the mean.

func reportQuantiles(b *testing.B, prefix string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	ms := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), prefix+"-p50-ms")
	b.ReportMetric(ms(0.95), prefix+"-p95-ms")
}

func benchEnv(b *testing.B) *podEnv {
	e := newPodEnv(b)
	e.masq = os.Getenv("CRIT_BENCH_NOMASQ") == ""
	// The state dir is /run on a node, a tmpfs; this machine's /tmp is a
	// slow unjournalled disk, which would measure the disk, not us.
	if err := os.MkdirAll(e.cfg.State, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("tmpfs", e.cfg.State, "tmpfs", 0, "mode=0700"); err != nil {
		b.Fatal(err)
	}
	e.tmpfs = e.cfg.State
	e.conflist()
	e.start()
	return e
}

// BenchmarkRunPodSandbox: RunPodSandbox in sequence, then stop+remove of
// each, timed separately.
func BenchmarkRunPodSandbox(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	var run, stopRemove []time.Duration
	ids := make([]string, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r, err := e.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("bench" + strconv.Itoa(i))})
		if err != nil {
			b.Fatal(err)
		}
		run = append(run, time.Since(t0))
		ids = append(ids, r.PodSandboxId)
	}
	b.StopTimer()
	for _, id := range ids {
		t0 := time.Now()
		e.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id})
		if _, err := e.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			b.Fatal(err)
		}
		stopRemove = append(stopRemove, time.Since(t0))
	}
	reportQuantiles(b, "run", run)
	reportQuantiles(b, "stop+remove", stopRemove)
}

// BenchmarkRunPodSandbox50: 50 RunPodSandbox at once per iteration.
func BenchmarkRunPodSandbox50(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	var all, totals []time.Duration
	for i := 0; i < b.N; i++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var ids []string
		t0 := time.Now()
		for j := 0; j < 50; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := time.Now()
				r, err := e.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig(fmt.Sprintf("c%d-%d", i, j))})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					b.Error(err)
					return
				}
				all = append(all, time.Since(s))
				ids = append(ids, r.PodSandboxId)
			}()
		}
		wg.Wait()
		totals = append(totals, time.Since(t0))
		b.StopTimer()
		for _, id := range ids {
			e.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
		}
		b.StartTimer()
	}
	reportQuantiles(b, "run", all)
	reportQuantiles(b, "total50", totals)
}

// BenchmarkBridgeAddDirect is the floor: the same conflist's ADD through
// libcni into a netns made by ip(8), without cri-server.
func BenchmarkBridgeAddDirect(b *testing.B) {
	e := newPodEnv(b)
	e.masq = os.Getenv("CRIT_BENCH_NOMASQ") == ""
	e.conflist()
	m := cni.New(e.cfg.CNI.ConfDir, e.cfg.CNI.BinDirs)
	m.SetCacheDir(filepath.Join(e.dir, "cache"))
	ctx := context.Background()
	var add []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := "crit-bench-" + randHex(4)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			b.Fatalf("ip netns add: %v %s", err, out)
		}
		a := &cni.Attachment{ID: randHex(16), NetNS: "/run/netns/" + name, Namespace: "bench", Name: name, UID: "u"}
		if err := m.Prepare(a); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		_, err := m.Add(ctx, a)
		add = append(add, time.Since(t0))
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		m.Del(ctx, a)
		exec.Command("ip", "netns", "del", name).Run()
		b.StartTimer()
	}
	reportQuantiles(b, "add", add)
}

// BenchmarkPodMemory reports what cri-server's processes cost per pod.
// A pod without a shared PID namespace has none; one with it has the
// reaping init, measured here (RSS and PSS from smaps_rollup).
func BenchmarkPodMemory(b *testing.B) {
	e := benchEnv(b)
	ctx := context.Background()
	for _, n := range []int{1, 10, 50} {
		var ids []string
		var rss, pss int
		for i := 0; i < n; i++ {
			cfg := podConfig(fmt.Sprintf("mem%d-%d", n, i))
			cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
			r, err := e.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, r.PodSandboxId)
		}
		time.Sleep(200 * time.Millisecond) // let the inits settle
		for _, id := range ids {
			_, info := e.status(id)
			r, p := smapsRollup(int(info["pid"].(float64)))
			rss, pss = rss+r, pss+p
		}
		b.ReportMetric(float64(rss)/float64(n), fmt.Sprintf("rss-kB/pod@%d", n))
		b.ReportMetric(float64(pss)/float64(n), fmt.Sprintf("pss-kB/pod@%d", n))
		for _, id := range ids {
			e.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
		}
	}
}

func smapsRollup(pid int) (rss, pss int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss
}

// BenchmarkBridgeAddDirect50 is the floor for 50 at once: 50 ADDs of the
// same conflist through libcni concurrently, into netns made beforehand.
func BenchmarkBridgeAddDirect50(b *testing.B) {
	e := newPodEnv(b)
	e.masq = os.Getenv("CRIT_BENCH_NOMASQ") == ""
	e.conflist()
	m := cni.New(e.cfg.CNI.ConfDir, e.cfg.CNI.BinDirs)
	m.SetCacheDir(filepath.Join(e.dir, "cache"))
	ctx := context.Background()
	var all, totals []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		atts := make([]*cni.Attachment, 50)
		for j := range atts {
			name := "crit-bench-" + randHex(4)
			if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
				b.Fatalf("ip netns add: %v %s", err, out)
			}
			atts[j] = &cni.Attachment{ID: randHex(16), NetNS: "/run/netns/" + name, Namespace: "bench", Name: name, UID: "u"}
			if err := m.Prepare(atts[j]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		var mu sync.Mutex
		var wg sync.WaitGroup
		t0 := time.Now()
		for _, a := range atts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := time.Now()
				_, err := m.Add(ctx, a)
				mu.Lock()
				all = append(all, time.Since(s))
				mu.Unlock()
				if err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		totals = append(totals, time.Since(t0))
		b.StopTimer()
		for _, a := range atts {
			m.Del(ctx, a)
			exec.Command("ip", "netns", "del", filepath.Base(a.NetNS)).Run()
		}
		b.StartTimer()
	}
	reportQuantiles(b, "add", all)
	reportQuantiles(b, "total50", totals)
}
