package cgroups

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// watch runs the OOM event loop on a non-blocking fd wrapped in an os.File,
// so the Go poller serves it and Close (on ctx end) unblocks the read.
// wake reports whether the wake-up was an OOM; alive whether the cgroup
// still exists (checked on every wake and every second, because not every
// kernel signals a removed cgroup).
func watch(ctx context.Context, f *os.File, wake func([]byte) bool, alive func() bool, cleanup func()) <-chan struct{} {
	ch := make(chan struct{}, 1)
	stop := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		f.Close()
	}()
	go func() {
		defer func() {
			close(stop)
			if cleanup != nil {
				cleanup()
			}
			close(ch)
		}()
		buf := make([]byte, 4096)
		for {
			_ = f.SetReadDeadline(time.Now().Add(time.Second))
			n, err := f.Read(buf)
			if ctx.Err() != nil {
				return
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			if err == nil && wake(buf[:n]) {
				select {
				case ch <- struct{}{}:
				default: // one pending event is enough: the reader rereads the counter
				}
			}
			if !alive() {
				return
			}
		}
	}()
	return ch
}

// OOMEvents (v2) watches memory.events with inotify: the kernel sends
// IN_MODIFY when any of its counters changes; an event fires when "oom" or
// "oom_kill" grew.
func (m *v2Manager) OOMEvents(ctx context.Context) (<-chan struct{}, error) {
	p := filepath.Join(m.dir, "memory.events")
	ifd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch oom events %s: %w", m.dir, err)
	}
	if _, err := unix.InotifyAddWatch(ifd, p, unix.IN_MODIFY); err != nil {
		unix.Close(ifd)
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("watch oom events %s: %w", m.dir, errUnsupported("memory controller not enabled (no memory.events)"))
		}
		return nil, fmt.Errorf("watch oom events %s: %w", p, classify(err))
	}
	buf := make([]byte, 0, 256)
	count := func() uint64 {
		var n uint64
		var rerr error
		buf, rerr = readInto(buf, p)
		if rerr != nil {
			return 0
		}
		eachKV(buf, func(k []byte, v uint64) {
			if bytes.Equal(k, []byte("oom")) || bytes.Equal(k, []byte("oom_kill")) {
				n += v
			}
		})
		return n
	}
	last := count()
	wake := func([]byte) bool {
		n := count()
		fired := n > last
		last = n
		return fired
	}
	alive := func() bool { return fileExists(p) }
	return watch(ctx, os.NewFile(uintptr(ifd), "inotify:"+p), wake, alive, nil), nil
}

// OOMEvents (v1) registers an eventfd for memory.oom_control through
// cgroup.event_control. The kernel also signals it when the cgroup is
// removed, which alive tells apart.
func (m *v1Manager) OOMEvents(ctx context.Context) (<-chan struct{}, error) {
	dir, ok := m.dirs["memory"]
	if !ok {
		return nil, errUnsupported("no v1 memory hierarchy")
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch oom events %s: %w", dir, err)
	}
	ofd, err := unix.Open(filepath.Join(dir, "memory.oom_control"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("watch oom events %s: %w", dir, classify(err))
	}
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(ofd)
	if err := writeFile(dir, "cgroup.event_control", reg); err != nil {
		unix.Close(efd)
		unix.Close(ofd)
		return nil, fmt.Errorf("watch oom events: %w", err)
	}
	ctl := filepath.Join(dir, "cgroup.event_control")
	alive := func() bool { return fileExists(ctl) }
	wake := func(b []byte) bool { return len(b) == 8 && alive() }
	return watch(ctx, os.NewFile(uintptr(efd), "eventfd:"+dir), wake, alive, func() { unix.Close(ofd) }), nil
}
