package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cri-server/cri-server/cni"
)

func journalManager(t *testing.T) (*Manager, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pods-net")
	m := &Manager{opt: Options{NetJournalDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Cleanup(m.netj.close)
	return m, dir
}

func journaledIDs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := ReadNetJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for id, a := range ents {
		if a.ID != id {
			t.Errorf("entry %s holds the attachment of %s", id, a.ID)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestNetJournalAddDoneAndTornLine(t *testing.T) {
	m, dir := journalManager(t)
	for _, id := range []string{"a", "b", "c"} {
		if err := m.journalNet(id, &cni.Attachment{ID: id, NetNS: "/run/netns/" + id}); err != nil {
			t.Fatal(err)
		}
	}
	m.unjournalNet("a")
	m.unjournalNet("never") // not journaled: nothing written
	if got := journaledIDs(t, dir); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("pending %v, want [b c]", got)
	}
	// A crash in the middle of a line: the line is skipped, the rest kept.
	f, err := os.OpenFile(filepath.Join(dir, netJournalFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"c","do`)
	f.Close()
	if got := journaledIDs(t, dir); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("pending after a torn line %v, want [b c]", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files in the journal dir, want the one log", len(ents))
	}
}

func TestNetJournalCompacts(t *testing.T) {
	m, dir := journalManager(t)
	if err := m.journalNet("kept", &cni.Attachment{ID: "kept"}); err != nil {
		t.Fatal(err)
	}
	conf := make([]byte, 2000) // a conflist's size
	for i := range conf {
		conf[i] = 'x'
	}
	for i := range 600 {
		id := fmt.Sprintf("pod%d", i)
		if err := m.journalNet(id, &cni.Attachment{ID: id, ConfList: conf}); err != nil {
			t.Fatal(err)
		}
		m.unjournalNet(id)
	}
	st, err := os.Stat(filepath.Join(dir, netJournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > netJournalCompactAt {
		t.Errorf("journal of %d bytes after 600 pods came and went, want it compacted below %d", st.Size(), netJournalCompactAt)
	}
	if got := journaledIDs(t, dir); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("pending after compaction %v, want [kept]", got)
	}
	// Appends go on after a compaction.
	if err := m.journalNet("late", &cni.Attachment{ID: "late"}); err != nil {
		t.Fatal(err)
	}
	if got := journaledIDs(t, dir); !slices.Equal(got, []string{"kept", "late"}) {
		t.Fatalf("pending %v, want [kept late]", got)
	}
}

// Entries of pods whose records survived are covered by the records: the
// sweep drops them, in either form, and leaves no file behind.
func TestNetJournalSweepKnownPods(t *testing.T) {
	m, dir := journalManager(t)
	if err := m.journalNet("new", &cni.Attachment{ID: "new"}); err != nil {
		t.Fatal(err)
	}
	m.netj.close()
	if err := os.WriteFile(filepath.Join(dir, "old.json"), []byte(`{"id":"old"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := journaledIDs(t, dir); !slices.Equal(got, []string{"new", "old"}) {
		t.Fatalf("pending %v, want [new old]", got)
	}
	m.sweepNetJournal(context.Background(), map[string]bool{"new": true, "old": true})
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files in the journal dir after the sweep, want none", len(ents))
	}
	m.unjournalNet("new") // its record's commit, after the sweep: nothing to do
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files in the journal dir after a late done, want none", len(ents))
	}
}
