package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit shares one bbolt commit (and its fsyncs) between writers
// that arrive while another commit is in flight. bbolt has one writer at a
// time and each commit syncs the file twice, so 50 pods started at once
// used to queue 100 commits one behind the other (a pod waited up to 170
// ms for the store alone). A writer that finds no commit in flight commits
// at once, so a lone write costs what it did; bbolt's own Batch would make
// it wait for company first.
type groupCommit struct {
	mu      sync.Mutex
	running bool
	queue   []pendingOp
}

type pendingOp struct {
	fn   func(*bolt.Tx) error
	sync bool // the commit must be durable before done
	done chan error
}

// commit runs fn in a read-write transaction, possibly shared with other
// writers', and returns once that transaction is committed, and durable
// when sync. A shared transaction that fails is retried one op per
// transaction, so each op gets its own error and one bad op does not fail
// the others.
func (d *DB) commit(fn func(*bolt.Tx) error, sync bool) error {
	done := make(chan error, 1)
	g := &d.gc
	g.mu.Lock()
	g.queue = append(g.queue, pendingOp{fn, sync, done})
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if lead {
		// The leader commits what is queued (its own op among it); what
		// arrives meanwhile is carried on by a goroutine, so the leader
		// returns as soon as its own op is durable.
		if d.commitQueued() {
			go func() {
				for d.commitQueued() {
				}
			}()
		}
	}
	return <-done
}

// commitQueued commits the queue in one transaction and says whether more
// was queued meanwhile; when not, it ends the run.
func (d *DB) commitQueued() bool {
	g := &d.gc
	g.mu.Lock()
	ops := g.queue
	g.queue = nil
	g.mu.Unlock()
	if len(ops) > 0 {
		d.commitOps(ops)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.running = false
		return false
	}
	return true
}

func (d *DB) commitOps(ops []pendingOp) {
	if len(ops) == 1 {
		ops[0].done <- d.update(ops[0].sync, ops[0].fn)
		return
	}
	sync := false
	for _, op := range ops {
		sync = sync || op.sync
	}
	err := d.update(sync, func(tx *bolt.Tx) error {
		for _, op := range ops {
			if err := op.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, op := range ops {
			op.done <- nil
		}
		return
	}
	for _, op := range ops {
		op.done <- d.update(op.sync, op.fn)
	}
}

// update is bbolt's Update, with the fsyncs of its commit skipped unless
// sync. bbolt reads NoSync only while committing, under its writer lock,
// which fn runs under too: setting it there decides for this transaction
// alone. A later synced commit makes an unsynced one durable as well: its
// pages are written by then, and bbolt's copy-on-write tree includes them.
func (d *DB) update(sync bool, fn func(*bolt.Tx) error) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		d.db.NoSync = !sync
		return fn(tx)
	})
}
