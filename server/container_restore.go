package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/store"
)

func bgCtx() context.Context { return context.Background() }

func (s *Server) ociStateDir() string { return filepath.Join(s.cfg.State, "oci") }

// initContainers sets up the container side of the server and rebuilds it
// from the store: every container the store knows is reloaded, matched with
// its live monitor or its exit record (an exit that happened while the
// daemon was down is reported as such), and bundles nobody knows are
// cleaned.
func (s *Server) initContainers(db *store.DB) error {
	s.ctrs = newContainerStore(db)
	s.events = newEventHub()
	if s.monitorExe == "" {
		s.monitorExe = "/proc/self/exe"
	}
	s.oomScoreAdj, s.capSysResource = ownOOMScoreAdj()
	if err := os.MkdirAll(filepath.Join(s.cfg.State, "containers"), 0o700); err != nil {
		return fmt.Errorf("create containers state dir: %w", err)
	}
	recs, err := store.List[containerRecord](db, store.BucketContainers)
	if err != nil {
		return fmt.Errorf("load containers: %w", err)
	}
	known := map[string]bool{}
	for _, rec := range recs {
		known[rec.ID] = true
		if err := s.ctrs.names.Reserve(rec.Name, rec.ID); err != nil {
			s.log.Error("two containers hold one name", "container", rec.ID, "error", err)
		}
		if err := s.ctrs.add(rec); err != nil {
			return err
		}
		if rec.Status.State != runtime.ContainerState_CONTAINER_EXITED {
			s.reconcile(rec)
		}
	}
	s.cleanOrphanBundles(known)
	s.log.Info("containers reloaded", "count", len(recs))
	return nil
}

// reconcile matches a non-exited record with reality.
func (s *Server) reconcile(rec *containerRecord) {
	// A hung monitor must not hold up the daemon's start.
	ctx, cancel := context.WithTimeout(bgCtx(), 5*time.Second)
	rep, err := monitor.Call(ctx, rec.Bundle, monitor.Request{Op: monitor.OpStatus})
	cancel()
	switch {
	case err == nil && rep.Exit != nil:
		s.recordExit(rec.ID, rep.Exit, nil)
	case err == nil:
		if rep.Started && rec.Status.State == runtime.ContainerState_CONTAINER_CREATED {
			// Started, but the daemon died before it checkpointed that.
			s.ctrs.update(rec.ID, func(st *containerStatus) error {
				st.State, st.Pid = runtime.ContainerState_CONTAINER_RUNNING, rep.Pid
				if st.StartedAt.IsZero() {
					st.StartedAt = time.Now()
				}
				return nil
			})
		}
		go s.watch(rec.ID, rec.Bundle)
	default:
		ex, rerr := monitor.ReadExit(rec.Bundle)
		if rerr != nil {
			ex = nil
		}
		s.recordExit(rec.ID, ex, err)
	}
}

// killLost kills every process of a container whose monitor is gone
// without an exit record, before it is reported EXITED: left alone it would
// run on unseen, unlogged and unreaped beside the replacement the kubelet
// starts (the reverse of CRI-O issue 6295, where it was reported running).
// The executor's delete kills through the cgroup and drops its state;
// RemoveContainer's own delete then finds nothing to do.
func (s *Server) killLost(id string) {
	rec, _, err := s.ctrs.get(id)
	if err != nil || rec.Status.State == runtime.ContainerState_CONTAINER_EXITED || s.runtime == nil {
		return
	}
	ctx, cancel := context.WithTimeout(bgCtx(), 15*time.Second)
	defer cancel()
	if err := s.runtime.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		s.log.Error("kill container of a lost monitor", "container", id, "error", err)
		return
	}
	s.log.Warn("killed container of a lost monitor", "container", id)
}

// cleanOrphanBundles removes container bundles no record owns (a create
// that crashed between spawning the monitor and checkpointing), killing a
// monitor still serving one.
func (s *Server) cleanOrphanBundles(known map[string]bool) {
	dir := filepath.Join(s.cfg.State, "containers")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if known[e.Name()] || !e.IsDir() {
			continue
		}
		bundle := filepath.Join(dir, e.Name())
		ctx, cancel := context.WithTimeout(bgCtx(), 5*time.Second)
		if _, err := monitor.Call(ctx, bundle, monitor.Request{Op: monitor.OpKill, Signal: 9, All: true}); err == nil {
			monitor.Call(ctx, bundle, monitor.Request{Op: monitor.OpWait})
		} else {
			// A monitor still creating its container has no socket yet.
			killMonitorsOf(bundle)
		}
		cancel()
		if s.runtime != nil {
			s.runtime.Delete(bgCtx(), e.Name(), true)
		}
		if s.imageDeps != nil {
			s.imageDeps.Remove(bgCtx(), e.Name())
		}
		os.RemoveAll(bundle)
		s.log.Warn("removed orphan container state", "container", e.Name())
	}
}

// killMonitorsOf kills every process running `<exe> monitor <bundle>` and
// waits (up to 5 s) for them to go. It reads every process's cmdline: for
// the start-up sweep of orphan bundles only.
func killMonitorsOf(bundle string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[1] == "monitor" && args[2] == bundle {
			unix.Kill(pid, unix.SIGKILL)
			pids = append(pids, pid)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for unix.Kill(pid, 0) == nil && !isZombie(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// isZombie says whether pid has exited but is not reaped (by init, when
// its parent was the killed daemon).
func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// ownOOMScoreAdj reads the daemon's oom_score_adj and whether it may set a
// lower one for its children (CAP_SYS_RESOURCE in the effective set).
func ownOOMScoreAdj() (int, bool) {
	adj := 0
	if data, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		adj, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return adj, false
	}
	return adj, data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}
