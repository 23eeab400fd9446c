package cni

import (
	"context"
	"sync"
	"time"
)

// SlotHold is how long an ADD keeps its turn before it gives it to the
// next one in line. Under a burst on a busy node an ADD of the bridge
// conflist takes tens of ms; one that runs longer is most likely waiting
// on something other than this node's CPU (a DHCP server, a remote IPAM),
// and must not hold the queue behind it.
const SlotHold = 100 * time.Millisecond

// SetMaxParallelAdd bounds how many ADDs run at once: n <= 0 leaves them
// unbounded. It must be called before the manager is used.
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

// admit waits for an ADD's turn. The returned release must be called when
// the ADD ends; the turn is also given away on its own after SlotHold.
// It returns how long the ADD waited.
func (m *Manager) admit(ctx context.Context) (release func(), waited time.Duration, err error) {
	if m.addSlots == nil {
		return func() {}, 0, nil
	}
	t0 := time.Now()
	select {
	case m.addSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, time.Since(t0), ctx.Err()
	}
	waited = time.Since(t0)
	var once sync.Once
	free := func() { once.Do(func() { <-m.addSlots }) }
	timer := time.AfterFunc(SlotHold, free)
	return func() { timer.Stop(); free() }, waited, nil
}
