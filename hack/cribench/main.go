// Command cribench measures a CRI runtime through its socket, the way the
// kubelet drives it, so that cri-server and containerd are compared by the
// same client in the same run (hack/bench-cri.sh runs it against both).
//
//	cribench -socket S -image IMG [-pods P] [-containers C] [-runtime-pid PID]
//
// It runs P pods in sequence, each with C containers running `sleep`, and
// prints, one figure per line ("name value unit"):
//   - RunPodSandbox latency (median, p95),
//   - CreateContainer+StartContainer latency (median, p95),
//   - the memory the runtime added per running container and per pod: the
//     PSS of every new process that is not a workload (monitors, shims,
//     pause, reapers) plus the growth of the daemon's own RSS,
//   - the daemon's RSS idle and with everything running,
//   - ListContainers and ListPodSandbox latency at that size,
//   - StopPodSandbox+RemovePodSandbox latency.
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

func main() {
	sock := flag.String("socket", "", "CRI socket path")
	image := flag.String("image", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "image of the containers")
	pods := flag.Int("pods", 10, "pods to run")
	ctrs := flag.Int("containers", 2, "containers per pod")
	daemon := flag.Int("runtime-pid", 0, "pid of the runtime daemon, for its RSS")
	mark := flag.String("owner-match", "", "text in the command line of the runtime's per-container processes (shims, monitors): usually its state dir")
	flag.Parse()
	if *sock == "" {
		fmt.Fprintln(os.Stderr, "cribench: -socket is required")
		os.Exit(2)
	}
	if err := run(*sock, *image, *pods, *ctrs, *daemon, *mark); err != nil {
		fmt.Fprintln(os.Stderr, "cribench:", err)
		os.Exit(1)
	}
}

type bench struct {
	rt   runtime.RuntimeServiceClient
	img  runtime.ImageServiceClient
	pods []string
}

func run(sock, image string, nPods, nCtrs, daemon int, mark string) error {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	b := &bench{rt: runtime.NewRuntimeServiceClient(conn), img: runtime.NewImageServiceClient(conn)}
	ctx := context.Background()
	defer b.cleanup()

	if _, err := b.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	// Settle, then take the baseline: processes and the daemon's RSS.
	time.Sleep(time.Second)
	before := processes()
	idle := rssKB(daemon)

	var podLat, ctrLat []time.Duration
	for i := range nPods {
		cfg := podConfig(i)
		t0 := time.Now()
		resp, err := b.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			return fmt.Errorf("run pod %d: %w", i, err)
		}
		podLat = append(podLat, time.Since(t0))
		b.pods = append(b.pods, resp.PodSandboxId)
		for j := range nCtrs {
			t0 := time.Now()
			c, err := b.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
				PodSandboxId:  resp.PodSandboxId,
				SandboxConfig: cfg,
				Config: &runtime.ContainerConfig{
					Metadata: &runtime.ContainerMetadata{Name: fmt.Sprintf("c%d", j)},
					Image:    &runtime.ImageSpec{Image: image},
					Command:  []string{"sleep", "86400"},
					LogPath:  fmt.Sprintf("c%d.log", j),
					Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
						NamespaceOptions: nsOptions,
					}},
				},
			})
			if err != nil {
				return fmt.Errorf("create container %d/%d: %w", i, j, err)
			}
			if _, err := b.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				return fmt.Errorf("start container %d/%d: %w", i, j, err)
			}
			ctrLat = append(ctrLat, time.Since(t0))
		}
	}
	time.Sleep(time.Second)
	busy := rssKB(daemon)
	// The runtime's processes: new ones whose command line names the
	// runtime's dir (monitors, shims), the daemon's new children, and
	// their descendants (pause, reapers), but not the workloads. Other
	// processes of the machine started meanwhile do not count.
	after := processes()
	parents := parentsOf(after)
	owned := func(pid int) bool {
		for p := pid; p > 1; p = parents[p] {
			if p == daemon || (mark != "" && strings.Contains(after[p], mark)) {
				return true
			}
		}
		return false
	}
	var overhead, workload, procs int
	for pid, cmd := range after {
		if _, ok := before[pid]; ok || pid == daemon || !owned(pid) {
			continue
		}
		if strings.HasPrefix(cmd, "sleep\x0086400") {
			workload++
			continue
		}
		procs++
		overhead += pssKB(pid)
		if os.Getenv("CRIBENCH_VERBOSE") != "" {
			fmt.Fprintf(os.Stderr, "runtime process %d %q pss %d kB (anon %d, file %d), rss %d kB\n", pid, cmd, pssKB(pid),
				procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss_Anon:"), procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss_File:"), rssKB(pid))
		}
	}
	total := nPods * nCtrs
	if workload != total {
		return fmt.Errorf("found %d running workloads, want %d", workload, total)
	}
	lists := func(f func() error) (time.Duration, error) {
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
	lc, err := lists(func() error {
		_, err := b.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
		return err
	})
	if err != nil {
		return err
	}
	lp, err := lists(func() error {
		_, err := b.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		return err
	})
	if err != nil {
		return err
	}
	var stopLat []time.Duration
	for _, id := range b.pods {
		t0 := time.Now()
		if err := b.removePod(ctx, id); err != nil {
			return err
		}
		stopLat = append(stopLat, time.Since(t0))
	}
	b.pods = nil

	fmt.Printf("pods %d\ncontainers %d\nruntime_processes %d\n", nPods, total, procs)
	fmt.Printf("run_pod_median %.1f ms\nrun_pod_p95 %.1f ms\n", ms(median(podLat)), ms(p95(podLat)))
	fmt.Printf("create_start_median %.1f ms\ncreate_start_p95 %.1f ms\n", ms(median(ctrLat)), ms(p95(ctrLat)))
	fmt.Printf("stop_remove_pod_median %.1f ms\n", ms(median(stopLat)))
	fmt.Printf("list_containers_median %.3f ms\nlist_pods_median %.3f ms\n", ms(lc), ms(lp))
	if daemon > 0 {
		fmt.Printf("daemon_rss_idle %.1f MB\ndaemon_rss_busy %.1f MB\n", float64(idle)/1024, float64(busy)/1024)
	}
	added := overhead + max(busy-idle, 0)
	fmt.Printf("runtime_processes_pss %.1f MB\n", float64(overhead)/1024)
	fmt.Printf("memory_per_container %.2f MB\n", float64(added)/1024/float64(total))
	fmt.Printf("memory_per_pod %.2f MB\n", float64(added)/1024/float64(nPods))
	return nil
}

var nsOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}

func podConfig(i int) *runtime.PodSandboxConfig {
	name := fmt.Sprintf("cribench-%d-%d", os.Getpid(), i)
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "cribench", Uid: name},
		Hostname:     name,
		LogDirectory: filepath.Join(os.TempDir(), "cribench-logs", name),
		// As the kubelet sends for a pod without shareProcessNamespace.
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: nsOptions,
		}},
	}
}

func (b *bench) removePod(ctx context.Context, id string) error {
	if _, err := b.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stop pod %s: %w", id, err)
	}
	if _, err := b.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	return nil
}

func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range b.pods {
		if err := b.removePod(ctx, id); err != nil {
			fmt.Fprintln(os.Stderr, "cribench: cleanup:", err)
		}
	}
	os.RemoveAll(filepath.Join(os.TempDir(), "cribench-logs"))
}

// processes maps every pid to its NUL-separated command line.
func processes() map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 { // kernel threads have none
			continue
		}
		out[pid] = string(b)
	}
	return out
}

// parentsOf maps each pid to its parent's.
func parentsOf(procs map[int]string) map[int]int {
	out := map[int]int{}
	for pid := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command may contain spaces and parentheses: fields start
		// after the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			out[pid], _ = strconv.Atoi(f[1])
		}
	}
	return out
}

// pssKB reads a process's proportional set size: shared pages (the same
// binary in many monitors) are split between their users.
func pssKB(pid int) int {
	return procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

func rssKB(pid int) int {
	if pid <= 0 {
		return 0
	}
	return procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

func procField(path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
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
