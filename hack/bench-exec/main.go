// Command bench-exec measures ExecSync against a CRI runtime: N calls of
// `true` in a running container, one after the other, reporting median and
// p95 latency and the CPU time the runtime's processes spent per call,
// read from /proc/<pid>/stat before and after (utime+stime of each pid,
// plus cutime+cstime: the exec'd processes it reaped). hack/bench-exec.sh
// runs it beside containerd.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	sock := flag.String("sock", "", "CRI socket")
	ctr := flag.String("container", "", "running container id")
	n := flag.Int("n", 200, "calls")
	pids := flag.String("pids", "", "comma-separated pids whose CPU is the runtime's (daemon, shims)")
	name := flag.String("name", "runtime", "label of the result line")
	flag.Parse()
	if err := run(*sock, *ctr, *n, *pids, *name); err != nil {
		fmt.Fprintln(os.Stderr, "bench-exec:", err)
		os.Exit(1)
	}
}

func run(sock, ctr string, n int, pidList, name string) error {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	ctx := context.Background()
	req := &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}, Timeout: 10}
	// Warm up: the first call pays for connection setup and page cache.
	for range 5 {
		if _, err := rt.ExecSync(ctx, req); err != nil {
			return fmt.Errorf("exec sync: %w", err)
		}
	}
	pids := strings.Split(pidList, ",")
	self0, kids0, err := cpu(pids)
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, n)
	t0 := time.Now()
	for range n {
		t := time.Now()
		r, err := rt.ExecSync(ctx, req)
		if err != nil {
			return fmt.Errorf("exec sync: %w", err)
		}
		if r.ExitCode != 0 {
			return fmt.Errorf("true exited %d: %s", r.ExitCode, r.Stderr)
		}
		lat = append(lat, time.Since(t))
	}
	wall := time.Since(t0)
	self1, kids1, err := cpu(pids)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	perCall := func(d time.Duration) string { return (d / time.Duration(n)).Round(time.Microsecond).String() }
	fmt.Printf("%-11s n=%d median=%v p95=%v mean=%v  cpu/call: runtime self=%v, with reaped children=%v\n",
		name, n, lat[n/2].Round(time.Microsecond), lat[n*95/100].Round(time.Microsecond),
		(wall / time.Duration(n)).Round(time.Microsecond), perCall(self1-self0), perCall(self1-self0+kids1-kids0))
	return nil
}

// ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const hz = 100

// cpu sums utime+stime and cutime+cstime of pids.
func cpu(pids []string) (self, kids time.Duration, err error) {
	for _, p := range pids {
		b, err := os.ReadFile("/proc/" + p + "/stat")
		if err != nil {
			return 0, 0, err
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// fields after the comm: state is f[0]; utime, stime, cutime, cstime are 14-17 of stat(5), f[11..14].
		var v [4]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[11+i], 10, 64)
		}
		self += time.Duration(v[0]+v[1]) * time.Second / hz
		kids += time.Duration(v[2]+v[3]) * time.Second / hz
	}
	return self, kids, nil
}
