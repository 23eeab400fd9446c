package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/store"
)

func TestStateMachine(t *testing.T) {
	const (
		created = runtime.ContainerState_CONTAINER_CREATED
		running = runtime.ContainerState_CONTAINER_RUNNING
		exited  = runtime.ContainerState_CONTAINER_EXITED
		unknown = runtime.ContainerState_CONTAINER_UNKNOWN
	)
	for _, tc := range []struct {
		name     string
		from, to runtime.ContainerState
		ok       bool
	}{
		{"start", created, running, true},
		{"fail before start", created, exited, true},
		{"exit", running, exited, true},
		{"same state", running, running, true},
		{"restart an exited one", exited, running, false},
		{"back to created", running, created, false},
		{"exited to created", exited, created, false},
		{"to unknown", running, unknown, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := store.Open(filepath.Join(t.TempDir(), "meta.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cs := newContainerStore(db)
			if err := cs.add(&containerRecord{ID: "c", Status: containerStatus{State: tc.from, CreatedAt: time.Now()}}); err != nil {
				t.Fatal(err)
			}
			_, c, _ := cs.get("c")
			_, err = cs.update("c", func(st *containerStatus) error { st.State = tc.to; return nil })
			if tc.ok != (err == nil) {
				t.Fatalf("update %s -> %s: %v", stateName(tc.from), stateName(tc.to), err)
			}
			if !tc.ok && !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("refusal not FailedPrecondition: %v", err)
			}
			want := tc.from
			if tc.ok {
				want = tc.to
			}
			// Memory and the checkpoint agree, whatever happened.
			rec, _, _ := cs.get("c")
			var stored containerRecord
			if err := db.Get(store.BucketContainers, "c", &stored); err != nil {
				t.Fatal(err)
			}
			if rec.Status.State != want || stored.Status.State != want {
				t.Fatalf("memory %s, store %s, want %s", stateName(rec.Status.State), stateName(stored.Status.State), stateName(want))
			}
			select {
			case <-c.exited:
				if want != exited {
					t.Fatal("exited channel closed for a live container")
				}
			default:
				if want == exited {
					t.Fatal("exited channel open for an exited container")
				}
			}
		})
	}
}

// BenchmarkListContainers: List at density is answered from memory; with
// 200 pods of 2 containers it must not depend on any process.
func BenchmarkListContainers(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := &Server{ctrs: newContainerStore(db)}
	for i := 0; i < 400; i++ {
		rec := &containerRecord{ID: store.NewID(), PodID: "pod", Metadata: &runtime.ContainerMetadata{Name: "c"},
			Image: &runtime.ImageSpec{Image: "busybox"}, Labels: map[string]string{"app": "x"},
			Status: containerStatus{State: runtime.ContainerState_CONTAINER_RUNNING, CreatedAt: time.Now()}}
		if err := s.ctrs.add(rec); err != nil {
			b.Fatal(err)
		}
	}
	f := &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "x"}}
	for b.Loop() {
		if n := len(s.listContainers(f)); n != 400 {
			b.Fatalf("%d containers", n)
		}
	}
}

// A bundle no record owns (a create that crashed between spawning the
// monitor and checkpointing) is cleaned on start, its monitor killed.
func TestRestartCleansOrphans(t *testing.T) {
	e := newEnv(t)
	id := store.NewID()
	bundle := filepath.Join(e.cfg.State, "containers", id)
	os.MkdirAll(bundle, 0o700)
	sp := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sh", "-c", "exec sleep 100"}}}
	if _, err := monitor.Spawn(context.Background(), os.Args[0], bundle, monitor.Config{ID: id, OCIStateDir: e.s.ociStateDir()}, sp); err != nil {
		t.Fatal(err)
	}
	mon := monitorPid(t, bundle)
	e.s.Close()
	e.start(t)
	if _, err := os.Stat(bundle); !os.IsNotExist(err) {
		t.Fatalf("orphan bundle still there: %v", err)
	}
	for i := 0; i < 300 && syscall.Kill(mon, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if syscall.Kill(mon, 0) == nil {
		t.Fatal("orphan monitor still running")
	}
	if !e.rt.deleted[id] {
		t.Fatal("orphan's executor state not deleted")
	}
}
