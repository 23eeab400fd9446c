package cni

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// SlotHold is how long a turn is kept before it gives it to the
// next one in line. Under a burst on a busy node an ADD of the bridge
// conflist takes tens of ms; one that runs longer is most likely waiting
// on something other than this node's CPU (a DHCP server, a remote IPAM),
// and must not hold the queue behind it.
const SlotHold = 100 * time.Millisecond

// SetMaxParallelAdd bounds how many turns (Turn) are out at once: n <= 0
// leaves them unbounded. It must be called before the manager is used.
//
// Why: in a burst (a node coming up, a drained node's pods landing here)
// the plugins of every pod compete for the same few CPUs, and with all of
// them running at once every pod's network is ready only near the end of
// the burst. Run a few at a time in arrival order, the first pods are
// ready early and the median pod's wait halves, while the burst's total
// stays the same or shrinks (fewer runnable processes to switch between).
func (m *Manager) SetMaxParallelAdd(n int) {
	if n <= 0 {
		m.addSlots = nil
		return
	}
	m.addSlots = make(chan struct{}, n)
}

// Turn waits for a turn to set up a pod's network. The caller takes it
// before the pod's own setup work (which competes for the same CPUs), runs
// ADD in it and calls release when done; the turn is also given away on
// its own after SlotHold. It returns how long the caller waited. Add does
// not take a turn itself: whether to wait is the caller's policy.
func (m *Manager) Turn(ctx context.Context) (release func(), waited time.Duration, err error) {
	if m == nil || m.addSlots == nil {
		return func() {}, 0, nil
	}
	t0 := time.Now()
	select {
	case m.addSlots <- struct{}{}:
	case <-ctx.Done():
		waited := time.Since(t0)
		return nil, waited, fmt.Errorf("wait %v for a turn to add a pod network: %w", waited.Round(time.Millisecond), ctx.Err())
	}
	waited = time.Since(t0)
	var once sync.Once
	free := func() { once.Do(func() { <-m.addSlots }) }
	timer := time.AfterFunc(SlotHold, free)
	return func() { timer.Stop(); free() }, waited, nil
}
