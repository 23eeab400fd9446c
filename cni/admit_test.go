package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// turnsPlugin writes a CNI plugin that, on ADD, records how many ADDs
// are running (itself included) and then sleeps for the given time.
func turnsPlugin(t *testing.T, sleep string) (m *Manager, dir string) {
	t.Helper()
	dir = t.TempDir()
	bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	for _, d := range []string{bin, conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`#!/bin/sh
D=%s
cat >/dev/null
case "$CNI_COMMAND" in
ADD)
  touch "$D/run.$CNI_CONTAINERID"
  ls "$D" | grep -c '^run\.' >>"$D/counts"
  sleep %s
  rm "$D/run.$CNI_CONTAINERID"
  echo '{"cniVersion":"1.0.0"}' ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
`, dir, sleep)
	if err := os.WriteFile(filepath.Join(bin, "turns"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	list := `{"cniVersion":"1.0.0","name":"turns","plugins":[{"type":"turns"}]}`
	if err := os.WriteFile(filepath.Join(conf, "10-turns.conflist"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	m = New(conf, []string{bin})
	m.SetCacheDir(filepath.Join(dir, "cache"))
	return m, dir
}

// addAll runs n ADDs at once and returns the most that ran together.
func addAll(t *testing.T, m *Manager, dir string, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		a := &Attachment{ID: fmt.Sprintf("turns%02d", i), NetNS: "/proc/self/ns/net", Namespace: "ns", Name: "p", UID: "u"}
		if err := m.Prepare(a); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Add(context.Background(), a); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "counts"))
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		most = max(most, c)
	}
	return most
}

func TestMaxParallelAdd(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max, adds int
		sleep     string
		want      func(most int) bool
		wantText  string
	}{
		{name: "bounded", max: 3, adds: 9, sleep: "0.05", want: func(m int) bool { return m <= 3 }, wantText: "at most 3"},
		{name: "unbounded", max: 0, adds: 6, sleep: "0.3", want: func(m int) bool { return m > 3 }, wantText: "more than 3"},
		// Each ADD sleeps well past SlotHold: its turn passes on, so the
		// others start before it ends.
		{name: "slow ADD gives its turn away", max: 1, adds: 3, sleep: "1", want: func(m int) bool { return m >= 2 }, wantText: "at least 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, dir := turnsPlugin(t, tc.sleep)
			m.SetMaxParallelAdd(tc.max)
			if most := addAll(t, m, dir, tc.adds); !tc.want(most) {
				t.Errorf("%d ADDs ran at once, want %s", most, tc.wantText)
			}
			if m.addSlots != nil && len(m.addSlots) != 0 {
				t.Errorf("%d turns still held after every ADD ended", len(m.addSlots))
			}
		})
	}
}

func TestAddWaitingForATurnEndsWithItsContext(t *testing.T) {
	m, _ := turnsPlugin(t, "0")
	m.SetMaxParallelAdd(1)
	if m.addSlots == nil {
		t.Fatal("SetMaxParallelAdd(1) left ADDs unbounded")
	}
	m.addSlots <- struct{}{} // the one turn, taken
	a := &Attachment{ID: "waiting", NetNS: "/proc/self/ns/net", Namespace: "ns", Name: "p", UID: "u"}
	if err := m.Prepare(a); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := m.Add(ctx, a)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "turn") {
		t.Fatalf("Add = %v, want a deadline error while waiting for a turn", err)
	}
	if len(m.addSlots) != 1 {
		t.Errorf("turns held %d, want only the test's 1", len(m.addSlots))
	}
}
