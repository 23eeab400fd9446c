package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cri-server/cri-server/errdefs"
)

type rec struct {
	ID   string
	Name string
}

func TestPutGetListDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put(BucketPods, "b", rec{"b", "two"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Put(BucketPods, "a", rec{"a", "one"}); err != nil {
		t.Fatal(err)
	}
	var r rec
	if err := db.Get(BucketPods, "a", &r); err != nil || r.Name != "one" {
		t.Fatalf("get: %+v %v", r, err)
	}
	if err := db.Get(BucketPods, "zz", &r); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := db.Get("nobucket", "a", &r); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing bucket: %v", err)
	}
	db.Close()

	// Records survive a reopen, in key order.
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all, err := List[rec](db, BucketPods)
	if err != nil || len(all) != 2 || all[0].ID != "a" || all[1].ID != "b" {
		t.Fatalf("list after reopen: %v %v", all, err)
	}
	if err := db.Delete(BucketPods, "a"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(BucketPods, "a"); err != nil {
		t.Fatalf("second delete must be a no-op: %v", err)
	}
	if all, _ := List[rec](db, BucketPods); len(all) != 1 {
		t.Fatalf("after delete: %v", all)
	}
}

func TestRegistrarRace(t *testing.T) {
	r := NewRegistrar()
	var wg sync.WaitGroup
	wins := make(chan string, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if r.Reserve("pod_ns_1", id) == nil {
				wins <- id
			}
		}(NewID())
	}
	wg.Wait()
	close(wins)
	var winners []string
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("%d winners for one name", len(winners))
	}
	err := r.Reserve("pod_ns_1", "other")
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second reserve: %v", err)
	}
	if r.Reserve("pod_ns_1", winners[0]) != nil {
		t.Fatal("re-reserve by holder must succeed")
	}
	r.Release("pod_ns_1")
	if r.Reserve("pod_ns_1", "other") != nil {
		t.Fatal("released name not free")
	}
}

func TestNewID(t *testing.T) {
	a, b := NewID(), NewID()
	if len(a) != 64 || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
}

// TestConcurrentWritersShareCommits: writers at once all land durably (read
// back after a reopen), and one that fails gets its own error without
// failing the writers it shared a commit with.
func TestConcurrentWritersShareCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			bucket := BucketPods
			if i%8 == 7 {
				bucket = "" // bbolt refuses an empty bucket name
			}
			errs[i] = db.Put(bucket, fmt.Sprint(i), rec{ID: fmt.Sprint(i)})
			if i%3 == 0 && errs[i] == nil {
				errs[i] = db.Delete(bucket, fmt.Sprint(i))
			}
		})
	}
	wg.Wait()
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range n {
		var r rec
		gerr := db.Get(BucketPods, fmt.Sprint(i), &r)
		switch {
		case i%8 == 7:
			if errs[i] == nil {
				t.Errorf("put %d into an empty bucket name succeeded", i)
			}
		case errs[i] != nil:
			t.Errorf("write %d: %v", i, errs[i])
		case i%3 == 0 && !errors.Is(gerr, errdefs.ErrNotFound):
			t.Errorf("record %d deleted but reads back: %v", i, gerr)
		case i%3 != 0 && (gerr != nil || r.ID != fmt.Sprint(i)):
			t.Errorf("record %d: %+v, %v", i, r, gerr)
		}
	}
}

// TestPutUnsyncedMixesWithPut: unsynced and synced writers at once (the
// race detector watches bbolt's NoSync switch); an unsynced record reads
// back at once and, after a synced commit, after a reopen.
func TestPutUnsyncedMixesWithPut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			put := db.Put
			if i%2 == 0 {
				put = db.PutUnsynced
			}
			errs[i] = put(BucketPods, fmt.Sprint(i), rec{ID: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	var r rec
	if err := db.PutUnsynced(BucketPods, "last", rec{ID: "last"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(BucketPods, "last", &r); err != nil || r.ID != "last" {
		t.Fatalf("unsynced record before any sync: %+v, %v", r, err)
	}
	if err := db.Put(BucketPods, "sync", rec{ID: "sync"}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, k := range []string{"0", "1", "last", "sync"} {
		if err := db.Get(BucketPods, k, &r); err != nil || r.ID != k {
			t.Errorf("record %s after reopen: %+v, %v", k, r, err)
		}
	}
}

// BenchmarkPut compares a synced and an unsynced commit of one small
// record (the rootfs record of a CreateContainer) on the temp dir's disk.
func BenchmarkPut(b *testing.B) {
	for _, bc := range []struct {
		name   string
		synced bool
	}{{"synced", true}, {"unsynced", false}} {
		b.Run(bc.name, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "meta.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			put := db.PutUnsynced
			if bc.synced {
				put = db.Put
			}
			for i := 0; b.Loop(); i++ {
				if err := put(BucketImages, fmt.Sprint(i), rec{ID: fmt.Sprint(i), Name: "rootfs"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
