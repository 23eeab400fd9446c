package server

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
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
