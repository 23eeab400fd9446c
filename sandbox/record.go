package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/store"
)

// storeReady publishes the ready pod and makes its record survive a
// daemon crash before RunPodSandbox returns, without waiting for the
// store: the record goes to the pod dir (the state tmpfs, which outlives
// the daemon but not a reboot, and costs no fsync), and the store commit
// runs behind. Under load that commit waited behind every other pod's
// fsync: 35 to 280 ms per pod with 50 pods at once on this machine. A
// crash before it is durable leaves the file, which the next start adopts
// (adoptUnstored); a reboot before it loses a pod that the reboot stopped
// anyway (its netns, veth and rules are gone with it; an IP that host-local
// keeps on disk is freed from the network journal at start). The caller
// holds e.op.
func (m *Manager) storeReady(e *entry, p *Pod) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode pod record: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(p.Dir, recordFile), b); err != nil {
		return err
	}
	c := clonePod(p)
	m.mu.Lock()
	e.pod = c
	m.mu.Unlock()
	done := make(chan struct{})
	e.stored = done
	m.storing.Add(1)
	go func() {
		defer m.storing.Done()
		defer close(done)
		if err := m.db.Put(store.BucketPods, c.ID, c); err != nil {
			m.log.Error("store ready pod; the next start adopts it from its dir", "pod", c.ID, "error", err)
			return
		}
		m.unjournalNet(c.ID)
	}()
	return nil
}

// adoptUnstored stores the records of ready pods whose store commit the
// last run did not finish (storeReady), so that they load as any other.
func (m *Manager) adoptUnstored() {
	dir := filepath.Join(m.opt.StateDir, "pods")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range ents {
		b, err := os.ReadFile(filepath.Join(dir, d.Name(), recordFile))
		if err != nil {
			continue
		}
		p := new(Pod)
		if err := json.Unmarshal(b, p); err != nil || p.ID != d.Name() || p.State != StateReady {
			continue
		}
		if err := m.db.Get(store.BucketPods, p.ID, new(Pod)); !errors.Is(err, errdefs.ErrNotFound) {
			continue // stored (and maybe changed since): the store's is the record
		}
		if err := m.db.Put(store.BucketPods, p.ID, p); err != nil {
			m.log.Error("adopt unstored pod; its dir is swept instead", "pod", p.ID, "error", err)
			continue
		}
		m.log.Info("adopted ready pod whose store commit the last run did not finish", "pod", p.ID)
	}
}
