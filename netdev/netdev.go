// Package netdev reads network interface counters inside a network
// namespace, for the CRI pod stats. A pod's namespace is pinned by a bind
// mount and often has no process in it, so /proc/<pid>/net/dev is not
// available: the read joins the namespace on a locked OS thread and reads
// /proc/thread-self/net/dev, which shows the calling thread's namespace.
package netdev

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/internal/fastread"
)

// Interface is one device's cumulative counters.
type Interface struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// Result is what Read returns for one namespace; Err is set instead of
// Interfaces when that namespace could not be read.
type Result struct {
	Interfaces []Interface
	Err        error
}

// Read returns the counters of every interface but lo in each namespace
// file of paths, in order. All namespaces are read from one locked thread
// of a goroutine of its own (two setns per namespace, no goroutine per
// pod), so the caller's goroutine never runs in a pod's namespace.
func Read(paths []string) ([]Result, error) {
	type reply struct {
		r   []Result
		err error
	}
	ch := make(chan reply, 1)
	go func() {
		r, err := readAll(paths)
		ch <- reply{r, err}
	}()
	rep := <-ch
	return rep.r, rep.err
}

func readAll(paths []string) ([]Result, error) {
	out := make([]Result, len(paths))
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open own netns: %w", err)
	}
	defer self.Close()
	buf := make([]byte, 0, 4096)
	restored := true
	for i, p := range paths {
		out[i], buf = readOne(p, buf)
		// Back home after each namespace: if that fails the thread stays
		// locked and the runtime discards it when the goroutine ends.
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			restored = false
			for j := i + 1; j < len(paths); j++ {
				out[j].Err = fmt.Errorf("restore netns: %w", err)
			}
			break
		}
	}
	if restored {
		runtime.UnlockOSThread()
	}
	return out, nil
}

func readOne(path string, buf []byte) (Result, []byte) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return Result{Err: errdefs.NotFound("netns %s", path)}, buf
		}
		return Result{Err: fmt.Errorf("open netns %s: %w", path, err)}, buf
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		return Result{Err: fmt.Errorf("enter netns %s: %w", path, err)}, buf
	}
	buf, err = fastread.Into(buf, "/proc/thread-self/net/dev")
	if err != nil {
		return Result{Err: fmt.Errorf("read net/dev in %s: %w", path, err)}, buf
	}
	ifs, err := Parse(buf)
	if err != nil {
		return Result{Err: fmt.Errorf("parse net/dev in %s: %w", path, err)}, buf
	}
	return Result{Interfaces: ifs}, buf
}

// Parse reads the /proc/net/dev format: two header lines, then
// "name: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed
// multicast tx_bytes tx_packets tx_errs tx_drop ...". lo is left out: the
// kubelet and cAdvisor ignore it.
func Parse(b []byte) ([]Interface, error) {
	var out []Interface
	for n := 0; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if n < 2 || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, fmt.Errorf("line %q: no colon", line)
		}
		name := string(bytes.TrimSpace(line[:colon]))
		fields := bytes.Fields(line[colon+1:])
		if len(fields) < 12 {
			return nil, fmt.Errorf("interface %s: %d fields, want 16", name, len(fields))
		}
		if name == "lo" {
			continue
		}
		var v [12]uint64
		for i := range v {
			x, err := strconv.ParseUint(string(fields[i]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("interface %s: %w", name, err)
			}
			v[i] = x
		}
		out = append(out, Interface{Name: name,
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]})
	}
	return out, nil
}
