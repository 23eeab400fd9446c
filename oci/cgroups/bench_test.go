package cgroups

import (
	"fmt"
	"testing"
)

// BenchmarkListStats100 reads the CRI stats of 100 containers' cgroups on
// the host layout in one pass (ListContainerStats), with one reused reader.
func BenchmarkListStats100(b *testing.B) {
	for _, full := range []bool{false, true} {
		b.Run(fmt.Sprintf("full=%v", full), func(b *testing.B) {
			ms := benchCgroups(b, 100)
			r := NewStatsReader()
			r.Full = full
			out := make([]Stats, len(ms))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if errs := r.ReadMany(ms, out); errs != nil {
					b.Fatal(errs)
				}
			}
		})
	}
}

// BenchmarkStatsPerManager is the naive path for comparison: Stats() per
// container, a fresh result each time.
func BenchmarkStatsPerManager100(b *testing.B) {
	ms := benchCgroups(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range ms {
			if _, err := m.Stats(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchCgroups(b *testing.B, n int) []Manager {
	requireRoot(b)
	base := testPath(b)
	// The pod-level parent gets its own manager, as the sandbox does: a
	// container's Destroy leaves parents shared with its siblings.
	pod, err := New(base)
	if err != nil {
		b.Fatal(err)
	}
	if err := pod.Apply(0); err != nil {
		b.Fatal(err)
	}
	ms := make([]Manager, n)
	for i := range ms {
		m, err := New(fmt.Sprintf("%s/c%d", base, i))
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Apply(0); err != nil {
			b.Fatal(err)
		}
		ms[i] = m
	}
	b.Cleanup(func() {
		for _, m := range ms {
			if err := m.Destroy(); err != nil {
				b.Error(err)
			}
		}
		if err := pod.Destroy(); err != nil {
			b.Error(err)
		}
	})
	return ms
}
