package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cri-server/cri-server/cni"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/store"
)

// Stop stops the pod's containers, tears its network down (releasing the
// IP) and kills its init. Idempotent; stopping an unknown pod is fine, as
// the kubelet expects. A failing CNI DEL is logged and retried at Remove
// and on the next start: it never makes the pod unstoppable.
//
// The containers are killed and the network released at the same time:
// the server stops a pod's containers without a grace period (as
// containerd does: the kubelet has already stopped each with its own), so
// nothing of theirs runs once the signal is sent, and a stop costs the
// slower of the two (the plugins' DEL, mostly) instead of their sum.
func (m *Manager) Stop(ctx context.Context, id string) error {
	e, unlock, err := m.lockPod(id)
	if e == nil || err != nil {
		return err
	}
	defer unlock()
	m.mu.Lock()
	orig, cs := e.pod, m.stopper
	m.mu.Unlock()
	p := clonePod(orig)
	t0 := time.Now()
	var ctrErr error
	var ctrTime time.Duration
	ctrDone := make(chan struct{})
	go func() {
		defer close(ctrDone)
		if cs != nil {
			if err := cs.StopPodContainers(ctx, p.ID); err != nil {
				ctrErr = fmt.Errorf("stop containers of pod %s: %w", p.ID, err)
			}
		}
		ctrTime = time.Since(t0)
	}()
	owed := p.NetPending
	m.releaseNetwork(ctx, p)
	netTime := time.Since(t0)
	<-ctrDone
	if p.InitPID > 0 {
		// After the containers: a container in the shared PID namespace
		// must not see its PID 1 go first and be killed by the kernel
		// before the server has recorded its own stop.
		killInit(p.InitPID)
		p.InitPID = 0
	}
	if ctrErr != nil {
		// What was released stays released (the record says so); the
		// pod is not ready without its network, and the kubelet retries.
		if !p.NetPending && owed {
			p.State = StateNotReady
			if err := m.update(e, p); err != nil {
				m.log.Error("record pod network released", "pod", p.ID, "error", err)
			}
		}
		return ctrErr
	}
	if orig.State == StateNotReady && orig.NetPending == p.NetPending && orig.InitPID == 0 {
		return nil
	}
	p.State = StateNotReady
	if err := m.update(e, p); err != nil {
		return err
	}
	m.log.Info("pod stopped", "pod", p.ID, "containers_ms", ms(ctrTime), "network_ms", ms(netTime), "total_ms", ms(time.Since(t0)))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// releaseNetwork runs DEL if it is still owed, clearing NetPending on
// success.
func (m *Manager) releaseNetwork(ctx context.Context, p *Pod) {
	if !p.NetPending || p.Net == nil {
		p.NetPending = false
		return
	}
	if err := m.cni.Del(ctx, p.Net); err != nil {
		m.log.Warn("CNI DEL failed; will retry", "pod", p.ID, "error", err)
		return
	}
	p.NetPending = false
	m.unjournalNet(p.ID)
}

// lockPod finds a pod and takes its operation lock for Stop and Remove.
// An unknown or already removed pod gives a nil entry and no error: both
// calls are idempotent, as the CRI asks.
func (m *Manager) lockPod(id string) (e *entry, unlock func(), err error) {
	e, err = m.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	e.op.Lock()
	if e.removed {
		e.op.Unlock()
		return nil, nil, nil
	}
	return e, e.op.Unlock, nil
}

// Remove stops the pod if needed, removes its containers, namespaces,
// files and cgroup, and forgets it. Idempotent.
func (m *Manager) Remove(ctx context.Context, id string) error {
	if err := m.Stop(ctx, id); err != nil {
		return err
	}
	e, unlock, err := m.lockPod(id)
	if e == nil || err != nil {
		return err
	}
	defer unlock()
	m.mu.Lock()
	p, cs := clonePod(e.pod), m.stopper
	m.mu.Unlock()
	if cs != nil {
		if err := cs.RemovePodContainers(ctx, p.ID); err != nil {
			return fmt.Errorf("remove containers of pod %s: %w", p.ID, err)
		}
	}
	if err := m.teardown(ctx, p, false); err != nil {
		return err
	}
	e.waitStored()
	if err := m.db.Delete(store.BucketPods, p.ID); err != nil {
		return err
	}
	e.removed = true
	m.forget(p.ID, p.Name())
	m.log.Info("pod removed", "pod", p.ID)
	return nil
}

// teardown undoes everything Run may have done, in reverse. strict makes a
// failed DEL an error (a failed Run must leave no IP behind); otherwise the
// DEL has already been tried by Stop and a failure is only logged, so the
// pod can always be removed.
func (m *Manager) teardown(ctx context.Context, p *Pod, strict bool) error {
	if p.InitPID > 0 {
		killInit(p.InitPID)
	} else if pid := readInitPID(p.Dir); pid > 0 {
		killInit(pid)
	}
	if p.NetPending && p.Net != nil {
		if err := m.cni.Del(ctx, p.Net); err != nil {
			if strict {
				return err
			}
			m.log.Warn("CNI DEL failed at remove; the IP may stay held until CNI GC", "pod", p.ID, "error", err)
		}
	}
	// The fixed paths, not the record's: a setup that died before its
	// record was stored left them all the same.
	var errs []error
	for _, ns := range []string{"pidns", "utsns", "ipcns", "netns", "userns"} {
		errs = append(errs, unpin(filepath.Join(p.Dir, ns)))
	}
	errs = append(errs, unmountShm(filepath.Join(p.Dir, "shm")))
	errs = append(errs, removeCgroups(p.Cgroups))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return fmt.Errorf("remove pod dir: %w", err)
	}
	return nil
}

// New loads the pods in the store and reconciles them with the kernel:
// pods whose setup never finished are torn down; pods whose network
// namespace vanished (a reboot) are marked not ready with DEL still owed.
func New(ctx context.Context, opt Options) (*Manager, error) {
	if opt.ShmSize == 0 {
		opt.ShmSize = defaultShmSize
	}
	if opt.CgroupRoot == "" {
		opt.CgroupRoot = "/sys/fs/cgroup"
	}
	m := &Manager{opt: opt, log: opt.Log, cni: opt.CNI, db: opt.DB, names: store.NewRegistrar(), pods: map[string]*entry{}}
	m.adoptUnstored()
	var recs []*Pod
	err := opt.DB.ForEach(store.BucketPods, func(key string, data []byte) error {
		p := new(Pod)
		if err := json.Unmarshal(data, p); err != nil {
			m.log.Error("unreadable pod record; skipped", "pod", key, "error", err)
			return nil
		}
		recs = append(recs, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load pods: %w", err)
	}
	var valid []*cni.Attachment
	known := map[string]bool{}
	for _, p := range recs {
		known[p.ID] = true
		if m.reload(ctx, p) && p.NetPending && p.Net != nil {
			valid = append(valid, p.Net)
		}
	}
	m.sweepOrphanDirs(ctx, known)
	m.sweepNetJournal(ctx, known)
	// CNI 1.1 GC releases what plugins hold for attachments we no longer
	// know (a DEL that never succeeded before its pod was forgotten).
	if err := m.cni.GC(ctx, valid); err != nil {
		m.log.Debug("CNI GC skipped", "error", err)
	}
	if opt.PoolSize > 0 {
		// After the sweep: a killed daemon's pooled sets were orphan dirs.
		m.pool = newNSPool(filepath.Join(opt.StateDir, "pods"), opt.PoolSize, m.log)
	}
	return m, nil
}

// reload reconciles one stored pod; it reports whether the pod is kept.
func (m *Manager) reload(ctx context.Context, p *Pod) bool {
	if p.State == StateCreating {
		if err := m.teardown(ctx, p, false); err != nil {
			m.log.Error("clean up half-set-up pod", "pod", p.ID, "error", err)
		}
		m.db.Delete(store.BucketPods, p.ID)
		m.log.Info("cleaned up half-set-up pod", "pod", p.ID)
		return false
	}
	e := &entry{pod: p}
	if p.State == StateReady && p.NetNS != "" && !isMountpoint(p.NetNS) {
		p.State = StateNotReady
		m.db.Put(store.BucketPods, p.ID, p)
	}
	m.mu.Lock()
	m.pods[p.ID] = e
	m.mu.Unlock()
	if err := m.names.Reserve(p.Name(), p.ID); err != nil {
		m.log.Error("duplicate pod name in store", "pod", p.ID, "error", err)
	}
	if p.State == StateNotReady && p.NetPending {
		m.releaseNetwork(ctx, p)
		if !p.NetPending {
			m.db.Put(store.BucketPods, p.ID, p)
		}
	}
	return true
}

// sweepOrphanDirs tears down pod dirs with no record: setups that died
// before their store commit (namespaces, shm, cgroups, files and, when
// the attachment was journaled, the network through DEL).
func (m *Manager) sweepOrphanDirs(ctx context.Context, known map[string]bool) {
	ents, err := os.ReadDir(filepath.Join(m.opt.StateDir, "pods"))
	if err != nil {
		return
	}
	for _, d := range ents {
		if known[d.Name()] || !d.IsDir() {
			continue
		}
		p := &Pod{ID: d.Name(), Dir: filepath.Join(m.opt.StateDir, "pods", d.Name())}
		p.Cgroups = readCgroupJournal(p.Dir)
		if a := readAttachment(p.Dir); a != nil {
			// Died during ADD, or before the record was stored: DEL is owed.
			p.Net, p.NetPending = a, true
		}
		if readInitPID(p.Dir) == 0 {
			// Maybe killed between starting the init and recording it.
			p.InitPID = findInit(p.Dir)
		}
		if err := m.teardown(ctx, p, false); err != nil {
			m.log.Error("clean up orphan pod dir", "pod", p.ID, "error", err)
			continue
		}
		m.log.Info("cleaned up orphan pod dir", "pod", p.ID)
	}
}

// CheckNetwork runs CNI CHECK for a ready pod: nil when its network is as
// ADD left it (or it has none), else what the plugins found wrong.
func (m *Manager) CheckNetwork(ctx context.Context, id string) error {
	p, err := m.Get(id)
	if err != nil {
		return err
	}
	if p.State != StateReady || p.Net == nil {
		return nil
	}
	return m.cni.Check(ctx, p.Net)
}

// readInitPID is the pod init's pid recorded in dir, 0 if none or unreadable.
func readInitPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "init.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
