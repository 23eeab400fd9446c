// Command cribench measures a CRI runtime through its socket, the way the
// kubelet drives it, so that cri-server and containerd are compared by the
// same client in the same run (hack/bench-cri.sh runs it against both).
//
//	cribench -socket S [-pods N] [-parallel P] [-mem-steps 1,10,50]
//	         [-ctr-pods M -containers C -image IMG] [-runtime-pid PID]
//	cribench -cni-floor -cni-conf DIR [-cni-bin DIRS] [-pods N] [-parallel P]
//
// Each phase runs when its count is not 0, and prints one figure per line
// ("name value unit"):
//   - pods only (-pods N): N RunPodSandbox in sequence (median, p95), then
//     StopPodSandbox and RemovePodSandbox of each in sequence (each alone
//     and the pair);
//   - at once (-parallel P): P RunPodSandbox at the same time (per pod and
//     total), then P stop+remove at the same time;
//   - memory (-mem-steps): pods added up to each step, then the memory of
//     every process the runtime started for them (shims, pause, reapers),
//     RSS and PSS per pod, and the daemon's RSS growth per pod; once with
//     the kubelet's default pods, once with a shared PID namespace;
//   - containers (-ctr-pods M -containers C): M pods each with C containers
//     running `sleep`: CreateContainer+StartContainer, memory per container
//     and per pod, list latency, stop+remove of a pod with its containers.
//
// With -cni-floor it talks to no runtime: it runs the conflist in
// -cni-conf through libcni directly (ADD, then DEL) in namespaces it makes
// itself, N in sequence and P at once: the floor no runtime can beat.
//
// Everything it creates is removed at the end, also on failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type options struct {
	sock, image, mark string
	pods, parallel    int
	ctrPods, ctrs     int
	memSteps          []int
	daemon            int
	floor             bool
	cniConf, cniBin   string
	maxParallelAdd    int
}

func main() {
	var o options
	var steps string
	flag.StringVar(&o.sock, "socket", "", "CRI socket path")
	flag.StringVar(&o.image, "image", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "image of the containers")
	flag.IntVar(&o.pods, "pods", 100, "pods without containers to run in sequence (0: skip)")
	flag.IntVar(&o.parallel, "parallel", 50, "pods without containers to run at once (0: skip)")
	flag.StringVar(&steps, "mem-steps", "1,10,50", "pod counts at which to measure memory per pod (empty: skip)")
	flag.IntVar(&o.ctrPods, "ctr-pods", 10, "pods with containers to run in sequence (0: skip)")
	flag.IntVar(&o.ctrs, "containers", 2, "containers per pod in the containers phase")
	flag.IntVar(&o.daemon, "runtime-pid", 0, "pid of the runtime daemon, for its RSS")
	flag.StringVar(&o.mark, "owner-match", "", "text in the command line of the runtime's per-pod processes (shims, monitors): usually its state dir")
	flag.BoolVar(&o.floor, "cni-floor", false, "measure the CNI plugins' own ADD and DEL instead of a runtime")
	flag.StringVar(&o.cniConf, "cni-conf", "", "CNI conf dir for -cni-floor")
	flag.StringVar(&o.cniBin, "cni-bin", "/opt/cni/bin", "CNI plugin dirs for -cni-floor, colon-separated")
	flag.IntVar(&o.maxParallelAdd, "max-parallel-add", 0, "with -cni-floor: at most this many ADDs at once, taking turns as cri-server's do (0: all at once)")
	flag.Parse()
	for _, s := range strings.Split(steps, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "cribench: bad -mem-steps entry %q\n", s)
			os.Exit(2)
		}
		o.memSteps = append(o.memSteps, n)
	}
	var err error
	switch {
	case o.floor:
		if o.cniConf == "" {
			fmt.Fprintln(os.Stderr, "cribench: -cni-floor needs -cni-conf")
			os.Exit(2)
		}
		err = runFloor(o)
	case o.sock == "":
		fmt.Fprintln(os.Stderr, "cribench: -socket is required")
		os.Exit(2)
	default:
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cribench:", err)
		os.Exit(1)
	}
}

type bench struct {
	o    options
	rt   runtime.RuntimeServiceClient
	img  runtime.ImageServiceClient
	pods []string // still to remove at the end
	seq  int      // pod names are unique within the run
}

func run(o options) error {
	conn, err := grpc.NewClient("unix://"+o.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	b := &bench{o: o, rt: runtime.NewRuntimeServiceClient(conn), img: runtime.NewImageServiceClient(conn)}
	defer b.cleanup()
	ctx := context.Background()
	// A first pod warms the runtime (containerd pulls its pause image, both
	// load the CNI config): the kubelet's first pod pays that, not its 100th.
	if _, err := b.startPods(ctx, 1, false); err != nil {
		return err
	}
	if err := b.removeAll(ctx); err != nil {
		return err
	}
	if o.pods > 0 {
		if err := b.sequential(ctx); err != nil {
			return err
		}
	}
	if o.parallel > 0 {
		settle()
		if err := b.atOnce(ctx); err != nil {
			return err
		}
	}
	if len(o.memSteps) > 0 {
		if err := b.memory(ctx, false); err != nil {
			return err
		}
		if err := b.memory(ctx, true); err != nil {
			return err
		}
	}
	if o.ctrPods > 0 && o.ctrs > 0 {
		if err := b.containers(ctx); err != nil {
			return err
		}
	}
	return nil
}

// stopRemoveAll stops and removes every pod of the run, one after the
// other, returning the stop, remove and stop+remove latencies.
func (b *bench) stopRemoveAll(ctx context.Context) (stop, remove, both []time.Duration, err error) {
	for _, id := range b.pods {
		s, r, err := b.stopRemove(ctx, id)
		if err != nil {
			return nil, nil, nil, err
		}
		stop, remove, both = append(stop, s), append(remove, r), append(both, s+r)
	}
	b.pods = nil
	return stop, remove, both, nil
}

// sequential runs N pods one after the other, then stops and removes them
// one after the other.
func (b *bench) sequential(ctx context.Context) error {
	lat, err := b.startPods(ctx, b.o.pods, false)
	if err != nil {
		return err
	}
	stop, remove, both, err := b.stopRemoveAll(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("seq_pods %d\n", b.o.pods)
	printQ("run_pod", lat)
	printQ("stop_pod", stop)
	printQ("remove_pod", remove)
	printQ("stop_remove_pod", both)
	return nil
}

// atOnce runs P pods at the same time, then stops and removes them at the
// same time.
func (b *bench) atOnce(ctx context.Context) error {
	n := b.o.parallel
	cpu0 := cpuTime(b.o.daemon)
	t0 := time.Now()
	lat, err := b.startPods(ctx, n, true)
	total := time.Since(t0)
	if err != nil {
		return err
	}
	cpu := cpuTime(b.o.daemon) - cpu0
	ids := b.pods
	srLat := make([]time.Duration, len(ids))
	errs := make([]error, len(ids))
	t0 = time.Now()
	parallelDo(len(ids), func(i int) {
		s, r, err := b.stopRemove(ctx, ids[i])
		srLat[i], errs[i] = s+r, err
	})
	srTotal := time.Since(t0)
	if err := firstErr(errs); err != nil {
		return err
	}
	b.pods = nil
	fmt.Printf("par_pods %d\n", n)
	printQ("par_run_pod", lat)
	fmt.Printf("par_run_total %.1f ms\n", ms(total))
	if b.o.daemon > 0 {
		// The daemon process's own CPU (not its children's): what it
		// takes from the plugins on a saturated machine.
		fmt.Printf("par_run_daemon_cpu_per_pod %.2f ms\n", ms(cpu)/float64(n))
	}
	printQ("par_stop_remove_pod", srLat)
	fmt.Printf("par_stop_remove_total %.1f ms\n", ms(srTotal))
	return nil
}

// startPods runs n pods without containers, in sequence or all at once,
// and returns each one's RunPodSandbox latency.
func (b *bench) startPods(ctx context.Context, n int, atOnce bool) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	ids := make([]string, n)
	errs := make([]error, n)
	cfgs := make([]*runtime.PodSandboxConfig, n)
	for i := range cfgs {
		cfgs[i] = b.podConfig(false)
	}
	one := func(i int) {
		t0 := time.Now()
		resp, err := b.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfgs[i]})
		lat[i] = time.Since(t0)
		if err != nil {
			errs[i] = fmt.Errorf("run pod %s: %w", cfgs[i].Metadata.Name, err)
			return
		}
		ids[i] = resp.PodSandboxId
	}
	if atOnce {
		parallelDo(n, one)
	} else {
		for i := range n {
			if one(i); errs[i] != nil {
				break
			}
		}
	}
	for _, id := range ids {
		if id != "" {
			b.pods = append(b.pods, id)
		}
	}
	return lat, firstErr(errs)
}

// memory adds pods up to each step and reports what the runtime's
// processes for them cost per pod: first the kubelet's default pod (a PID
// namespace per container), then pods with shareProcessNamespace (a
// shared PID namespace, which needs a reaping init).
func (b *bench) memory(ctx context.Context, sharePID bool) error {
	prefix := "mem_pod"
	if sharePID {
		prefix = "mem_sharedpid_pod"
	}
	time.Sleep(time.Second)
	before := processes()
	idle := rssKB(b.o.daemon)
	for _, step := range b.o.memSteps {
		for len(b.pods) < step {
			cfg := b.podConfig(false)
			if sharePID {
				cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
					Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_POD, Ipc: runtime.NamespaceMode_POD}
			}
			resp, err := b.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				return fmt.Errorf("run pod %s: %w", cfg.Metadata.Name, err)
			}
			b.pods = append(b.pods, resp.PodSandboxId)
		}
		time.Sleep(500 * time.Millisecond) // let new processes settle
		u := b.usage(before, "")
		n := float64(len(b.pods))
		fmt.Printf("%s_processes@%d %d\n", prefix, step, u.procs)
		fmt.Printf("%s_rss@%d %.3f MB\n", prefix, step, float64(u.rss)/1024/n)
		fmt.Printf("%s_pss@%d %.3f MB\n", prefix, step, float64(u.pss)/1024/n)
		fmt.Printf("%s_daemon_growth@%d %.2f MB\n", prefix, step, float64(max(rssKB(b.o.daemon)-idle, 0))/1024/n)
	}
	return b.removeAll(ctx)
}

var nsOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}

func (b *bench) podConfig(logs bool) *runtime.PodSandboxConfig {
	b.seq++
	name := fmt.Sprintf("cribench-%d-%d", os.Getpid(), b.seq)
	cfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "cribench", Uid: name},
		Hostname: name,
		// As the kubelet sends for a pod without shareProcessNamespace.
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: nsOptions,
		}},
	}
	if logs {
		cfg.LogDirectory = filepath.Join(os.TempDir(), "cribench-logs", name)
	}
	return cfg
}

// stopRemove stops then removes a pod, as the kubelet does, timing each.
func (b *bench) stopRemove(ctx context.Context, id string) (stop, remove time.Duration, err error) {
	t0 := time.Now()
	if _, err := b.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return 0, 0, fmt.Errorf("stop pod %s: %w", id, err)
	}
	t1 := time.Now()
	if _, err := b.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return 0, 0, fmt.Errorf("remove pod %s: %w", id, err)
	}
	return t1.Sub(t0), time.Since(t1), nil
}

func (b *bench) removeAll(ctx context.Context) error {
	errs := make([]error, len(b.pods))
	parallelDo(len(b.pods), func(i int) { _, _, errs[i] = b.stopRemove(ctx, b.pods[i]) })
	b.pods = nil
	return firstErr(errs)
}

func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.removeAll(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "cribench: cleanup:", err)
	}
	os.RemoveAll(filepath.Join(os.TempDir(), "cribench-logs"))
}

// settle lets the kernel finish tearing down the namespaces of the phase
// before (netns cleanup runs in a workqueue and holds locks the next
// phase's ADDs need), so that a phase does not pay for the last one.
func settle() { time.Sleep(3 * time.Second) }

func listLatency(f func() error) (time.Duration, error) {
	var ds []time.Duration
	for range 20 {
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	return median(ds), nil
}

func printQ(name string, d []time.Duration) {
	fmt.Printf("%s_median %.1f ms\n%s_p95 %.1f ms\n", name, ms(median(d)), name, ms(p95(d)))
}

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }
func p95(d []time.Duration) time.Duration    { return quantile(d, 0.95) }

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s)-1)*q+0.5))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
