// Command stats-bench measures ListContainerStats against any CRI runtime:
// it starts one host-network pod with N running containers, calls
// ListContainerStats R times and prints the median and p95 latency, then
// removes the pod. Run by hack/bench-stats.sh, once per runtime.
//
//	stats-bench -endpoint unix:///run/x.sock -image busybox -n 100 -r 200
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "CRI endpoint (unix:///path)")
	image := flag.String("image", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "image the containers run")
	n := flag.Int("n", 100, "running containers")
	rounds := flag.Int("r", 200, "ListContainerStats calls measured")
	name := flag.String("name", "runtime", "label for the output")
	flag.Parse()
	if err := run(*endpoint, *image, *name, *n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "stats-bench:", err)
		os.Exit(1)
	}
}

func run(endpoint, image, name string, n, rounds int) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rs, is := runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
	ctx := context.Background()
	if _, err := is.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	uid := fmt.Sprintf("stats-bench-%d", time.Now().UnixNano())
	pcfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "stats-bench", Namespace: "bench", Uid: uid},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}},
	}
	pod, err := rs.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		return fmt.Errorf("run pod: %w", err)
	}
	defer func() {
		rs.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId})
		rs.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := rs.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: pcfg,
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: fmt.Sprintf("c%d", i)},
				Image: &runtime.ImageSpec{Image: image}, Command: []string{"sleep", "3600"}, Linux: &runtime.LinuxContainerConfig{}}})
		if err != nil {
			return fmt.Errorf("create container %d: %w", i, err)
		}
		if _, err := rs.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			return fmt.Errorf("start container %d: %w", i, err)
		}
	}
	fmt.Printf("%s: %d containers running in %v\n", name, n, time.Since(start).Round(time.Millisecond))
	// Warm-up: first sight of each container (cgroup paths, nano-core
	// baselines) is not what the kubelet pays every 10 s.
	for i := 0; i < 3; i++ {
		if _, err := rs.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{}); err != nil {
			return fmt.Errorf("list container stats: %w", err)
		}
	}
	d := make([]time.Duration, rounds)
	var got int
	for i := range d {
		t := time.Now()
		r, err := rs.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
		d[i] = time.Since(t)
		if err != nil {
			return fmt.Errorf("list container stats: %w", err)
		}
		got = 0
		for _, s := range r.Stats {
			if s.Cpu != nil && s.Memory != nil {
				got++
			}
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	fmt.Printf("%s: ListContainerStats, %d containers (%d with cpu+memory), %d calls: median %v p95 %v min %v\n",
		name, n, got, rounds, d[len(d)/2].Round(time.Microsecond), d[len(d)*95/100].Round(time.Microsecond), d[0].Round(time.Microsecond))
	return nil
}
