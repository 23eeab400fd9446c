package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cri-server/cri-server/cni"
)

// runFloor times the CNI plugins alone on the runtimes' conflist: ADD and
// DEL through libcni into namespaces made beforehand by ip(8) (not timed),
// N in sequence, then P at once. No runtime can be faster than this.
func runFloor(o options) error {
	cache, err := os.MkdirTemp("", "cribench-cni-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	m := cni.New(o.cniConf, strings.Split(o.cniBin, ":"))
	m.SetCacheDir(cache)
	m.SetMaxParallelAdd(o.maxParallelAdd)
	f := &floor{m: m}
	defer f.cleanup()
	ctx := context.Background()
	if n := o.pods; n > 0 {
		// The runtimes' shape: n pods up one after the other, then down
		// one after the other, so that the plugins see as many pods' rules
		// in iptables as they do under a runtime.
		atts := make([]*cni.Attachment, n)
		add, del := make([]time.Duration, n), make([]time.Duration, n)
		for i := range atts {
			if atts[i], err = f.attachment(); err != nil {
				return err
			}
			t0 := time.Now()
			if _, err := m.Add(ctx, atts[i]); err != nil {
				return fmt.Errorf("ADD: %w", err)
			}
			add[i] = time.Since(t0)
		}
		for i, a := range atts {
			t0 := time.Now()
			if err := m.Del(ctx, a); err != nil {
				return fmt.Errorf("DEL: %w", err)
			}
			del[i] = time.Since(t0)
		}
		f.cleanup()
		fmt.Printf("seq_pods %d\n", n)
		printQ("run_pod", add)
		printQ("stop_pod", del)
		printQ("stop_remove_pod", del)
	}
	if n := o.parallel; n > 0 {
		settle()
		atts := make([]*cni.Attachment, n)
		for i := range atts {
			if atts[i], err = f.attachment(); err != nil {
				return err
			}
		}
		add, del := make([]time.Duration, n), make([]time.Duration, n)
		errs := make([]error, n)
		cpu0 := cpuTime(os.Getpid())
		t0 := time.Now()
		parallelDo(n, func(i int) {
			s := time.Now()
			_, errs[i] = m.Add(ctx, atts[i])
			add[i] = time.Since(s)
		})
		addTotal := time.Since(t0)
		cpu := cpuTime(os.Getpid()) - cpu0
		if err := firstErr(errs); err != nil {
			return fmt.Errorf("ADD: %w", err)
		}
		t0 = time.Now()
		parallelDo(n, func(i int) {
			s := time.Now()
			errs[i] = m.Del(ctx, atts[i])
			del[i] = time.Since(s)
		})
		delTotal := time.Since(t0)
		if err := firstErr(errs); err != nil {
			return fmt.Errorf("DEL: %w", err)
		}
		fmt.Printf("par_pods %d\n", n)
		printQ("par_run_pod", add)
		fmt.Printf("par_run_total %.1f ms\n", ms(addTotal))
		// This process's own CPU, as the runtimes' daemon's: it too forks
		// and reaps the plugins.
		fmt.Printf("par_run_daemon_cpu_per_pod %.2f ms\n", ms(cpu)/float64(n))
		printQ("par_stop_remove_pod", del)
		fmt.Printf("par_stop_remove_total %.1f ms\n", ms(delTotal))
		f.cleanup()
	}
	return nil
}

type floor struct {
	m     *cni.Manager
	netns []string
}

// attachment makes a fresh netns and an attachment of the current conflist
// for it, as a runtime does before ADD.
func (f *floor) attachment() (*cni.Attachment, error) {
	var r [6]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	name := "cribench-" + id
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	f.netns = append(f.netns, name)
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("lo up: %v: %s", err, out)
	}
	a := &cni.Attachment{ID: id + id, NetNS: filepath.Join("/run/netns", name), Namespace: "cribench", Name: name, UID: name}
	if err := f.m.Prepare(a); err != nil {
		return nil, err
	}
	return a, nil
}

// cleanup drops the namespaces made so far (DEL has run, or the bench
// failed: then the runtime dir's cleanup takes the bridge down).
func (f *floor) cleanup() {
	for _, n := range f.netns {
		exec.Command("ip", "netns", "del", n).Run()
	}
	f.netns = nil
}
