package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// A Manager for the same path in another process (the command line's
// delete) removes the parents the creating Manager made, once it adopts
// their record; a record naming a directory that is not one of its own
// ancestors is ignored.
func TestAdoptRemovesParentsMadeElsewhere(t *testing.T) {
	requireRoot(t)
	p := testPath(t) // its cleanup fails the test if the made parent is left
	nested := filepath.Join(p, "deeper", "ctr")
	creator, err := New(nested)
	if err != nil {
		t.Fatal(err)
	}
	if err := creator.Apply(0); err != nil {
		t.Fatal(err)
	}
	made := creator.(MadeDirs).Made()
	if len(made) < 4 { // top, ctr, deeper, ctr in at least one hierarchy
		t.Fatalf("Made() = %v, want the whole new chain", made)
	}
	// A stranger: a cgroup nobody asked to remove, named in a bad record.
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	var strangers []string
	for _, mnt := range allMounts(t) {
		s := filepath.Join(mnt, "crisrv-stranger-"+hex.EncodeToString(b))
		if err := os.Mkdir(s, 0o755); err != nil {
			t.Fatal(err)
		}
		strangers = append(strangers, s)
	}
	defer func() {
		for _, s := range strangers {
			os.Remove(s)
		}
	}()

	deleter, err := New(nested)
	if err != nil {
		t.Fatal(err)
	}
	deleter.(MadeDirs).Adopt(append(append([]string{}, made...), strangers...))
	if err := deleter.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, d := range made {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("made directory %s left", d)
		}
	}
	for _, s := range strangers {
		if _, err := os.Stat(s); err != nil {
			t.Errorf("stranger %s removed: %v", s, err)
		}
	}
}
