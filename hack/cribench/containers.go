package main

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containers runs pods with containers: create+start latency, memory per
// container, list latency, and stop+remove of a pod with its containers
// still running.
func (b *bench) containers(ctx context.Context) error {
	o := b.o
	if _, err := b.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: o.image}}); err != nil {
		return fmt.Errorf("pull %s: %w", o.image, err)
	}
	time.Sleep(time.Second)
	before := processes()
	idle := rssKB(o.daemon)
	var podLat, ctrLat []time.Duration
	for range o.ctrPods {
		cfg := b.podConfig(true)
		t0 := time.Now()
		resp, err := b.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			return fmt.Errorf("run pod: %w", err)
		}
		podLat = append(podLat, time.Since(t0))
		b.pods = append(b.pods, resp.PodSandboxId)
		for j := range o.ctrs {
			d, err := b.startContainer(ctx, resp.PodSandboxId, cfg, j)
			if err != nil {
				return err
			}
			ctrLat = append(ctrLat, d)
		}
	}
	time.Sleep(time.Second)
	busy := rssKB(o.daemon)
	u := b.usage(before, "sleep\x0086400")
	total := o.ctrPods * o.ctrs
	if u.workloads != total {
		return fmt.Errorf("found %d running workloads, want %d", u.workloads, total)
	}
	lc, err := listLatency(func() error {
		_, err := b.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
		return err
	})
	if err != nil {
		return err
	}
	lp, err := listLatency(func() error {
		_, err := b.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		return err
	})
	if err != nil {
		return err
	}
	stop, remove, both, err := b.stopRemoveAll(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("ctr_pods %d\ncontainers %d\nctr_runtime_processes %d\n", o.ctrPods, total, u.procs)
	printQ("ctr_run_pod", podLat)
	printQ("create_start", ctrLat)
	printQ("ctr_stop_pod", stop)
	printQ("ctr_remove_pod", remove)
	printQ("ctr_stop_remove_pod", both)
	fmt.Printf("list_containers_median %.3f ms\nlist_pods_median %.3f ms\n", ms(lc), ms(lp))
	if o.daemon > 0 {
		fmt.Printf("daemon_rss_idle %.1f MB\ndaemon_rss_busy %.1f MB\n", float64(idle)/1024, float64(busy)/1024)
	}
	added := u.pss + max(busy-idle, 0)
	fmt.Printf("ctr_runtime_processes_pss %.1f MB\n", float64(u.pss)/1024)
	// The runtime's processes alone (monitors, shims), per container.
	fmt.Printf("ctr_processes_rss_per_container %.3f MB\nctr_processes_pss_per_container %.3f MB\n",
		float64(u.rss)/1024/float64(total), float64(u.pss)/1024/float64(total))
	fmt.Printf("memory_per_container %.2f MB\n", float64(added)/1024/float64(total))
	fmt.Printf("memory_per_ctr_pod %.2f MB\n", float64(added)/1024/float64(o.ctrPods))
	return nil
}

func (b *bench) startContainer(ctx context.Context, pod string, cfg *runtime.PodSandboxConfig, j int) (time.Duration, error) {
	t0 := time.Now()
	c, err := b.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId:  pod,
		SandboxConfig: cfg,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: fmt.Sprintf("c%d", j)},
			Image:    &runtime.ImageSpec{Image: b.o.image},
			Command:  []string{"sleep", "86400"},
			LogPath:  fmt.Sprintf("c%d.log", j),
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: nsOptions,
			}},
		},
	})
	if err != nil {
		return 0, fmt.Errorf("create container %s/%d: %w", pod, j, err)
	}
	if _, err := b.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return 0, fmt.Errorf("start container %s/%d: %w", pod, j, err)
	}
	return time.Since(t0), nil
}
