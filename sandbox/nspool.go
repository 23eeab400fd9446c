package sandbox

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cri-server/cri-server/store"
)

// nsPool keeps pods' namespaces (net with lo up, ipc, uts) made before any
// pod asks, each set pinned in a pod dir of its own under a fresh pod id.
// Under a burst the CNI plugins' netlink work holds the rtnl lock that
// making a network namespace needs too (to register its lo): with 50 pods
// at once that cost a pod 36 ms median (p90 91) of its own setup here,
// every millisecond of it before ADD could start.
//
// A pod that finds a set takes it whole, id and dir with it, and it never
// comes back: a failed setup tears it down like any pod's, so no pod ever
// gets namespaces another pod had. The pool refills one set at a time and
// only while no RunPodSandbox is in flight, so refilling never competes
// with the pods it serves. close tears the free sets down; those of a
// daemon killed before close are pod dirs without a record, which the
// next start sweeps (sweepOrphanDirs).
type nsPool struct {
	size int
	dir  string // the pods dir
	log  *slog.Logger

	busy atomic.Int32 // RunPodSandbox calls in flight

	mu     sync.Mutex
	free   []string // pod ids whose dir holds a ready set
	closed bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// poolIdlePoll is how often a refill waiting for RunPodSandbox calls to
// finish looks again.
const poolIdlePoll = 10 * time.Millisecond

func newNSPool(podsDir string, size int, log *slog.Logger) *nsPool {
	p := &nsPool{size: size, dir: podsDir, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	p.signal()
	go p.refill()
	return p
}

// take returns the id of a pod dir holding a ready set, "" if none is.
func (p *nsPool) take() string {
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) == 0 {
		return ""
	}
	id := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return id
}

// enter and leave bracket a RunPodSandbox; leaving may start a refill.
func (p *nsPool) enter() {
	if p != nil {
		p.busy.Add(1)
	}
}

func (p *nsPool) leave() {
	if p != nil {
		p.busy.Add(-1)
		p.signal()
	}
}

func (p *nsPool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *nsPool) refill() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		for p.wanted() {
			if p.busy.Load() > 0 {
				select {
				case <-p.stop:
					return
				case <-time.After(poolIdlePoll):
				}
				continue
			}
			id, err := p.make()
			if err != nil {
				p.log.Warn("make pooled pod namespaces; pods make their own", "error", err)
				break
			}
			p.mu.Lock()
			p.free = append(p.free, id)
			p.mu.Unlock()
		}
	}
}

func (p *nsPool) wanted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && len(p.free) < p.size
}

// make makes one set in a new pod dir, as createNamespaces does for a pod.
func (p *nsPool) make() (string, error) {
	id := store.NewID()
	dir := filepath.Join(p.dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if _, err := createNamespaces(nsRequest{dir: dir, net: true, ipc: true, uts: true}); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return id, nil
}

// close stops refilling and tears the free sets down.
func (p *nsPool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	free := p.free
	p.free = nil
	p.mu.Unlock()
	for _, id := range free {
		if err := dropSet(filepath.Join(p.dir, id)); err != nil {
			p.log.Error("remove pooled pod namespaces; the next start sweeps them", "dir", id, "error", err)
		}
	}
}

// dropSet unpins a set nobody took and removes its dir.
func dropSet(dir string) error {
	for _, ns := range []string{"utsns", "ipcns", "netns"} {
		if err := unpin(filepath.Join(dir, ns)); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// poolable says whether a pod can use a pooled set: it wants a network,
// IPC and UTS namespace of its own, owned by the node's user namespace.
func (plan *runPlan) poolable() bool {
	return !plan.hostNet && plan.ownIPC && plan.userns == nil
}
