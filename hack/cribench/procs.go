package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// usage is what the runtime's processes started since a baseline cost.
type usage struct {
	procs     int // runtime processes (not workloads)
	rss, pss  int // their sums, kB
	workloads int // processes whose command line starts with the workload's
}

// usage finds the runtime's processes: new ones whose command line names
// the runtime's dir (monitors, shims), the daemon's new children, and
// their descendants (pause, reapers), but not the workloads (command line
// starting with workload, NUL-separated). Other processes of the machine
// started meanwhile do not count.
func (b *bench) usage(before map[int]string, workload string) usage {
	after := processes()
	parents := parentsOf(after)
	owned := func(pid int) bool {
		for p := pid; p > 1; p = parents[p] {
			if p == b.o.daemon || (b.o.mark != "" && strings.Contains(after[p], b.o.mark)) {
				return true
			}
		}
		return false
	}
	var u usage
	for pid, cmd := range after {
		if _, ok := before[pid]; ok || pid == b.o.daemon || !owned(pid) {
			continue
		}
		if workload != "" && strings.HasPrefix(cmd, workload) {
			u.workloads++
			continue
		}
		u.procs++
		rss, pss := rssKB(pid), pssKB(pid)
		u.rss += rss
		u.pss += pss
		if os.Getenv("CRIBENCH_VERBOSE") != "" {
			fmt.Fprintf(os.Stderr, "runtime process %d %q pss %d kB, rss %d kB\n", pid, cmd, pss, rss)
		}
	}
	return u
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

// rssKB is the resident set (VmRSS): shared pages counted in full.
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

// cpuTime is the CPU time pid has used, its children excluded (0 without
// a pid): utime+stime of /proc/pid/stat, which keeps the time of threads
// that have exited (the daemon ends the threads it moves into a pod's
// namespaces), in 10 ms ticks.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64) // fields 14 and 15 of stat
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ 100
}

// parallelDo runs f(0..n-1) all at once and waits for them.
func parallelDo(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
