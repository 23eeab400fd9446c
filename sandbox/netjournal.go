package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/cri-server/cri-server/cni"
)

// The network journal keeps, on the root disk, each CNI attachment from
// just before its ADD until the pod's store commit is done (or its DEL
// has run). The pod dir's copy (attachmentFile) lives on the state tmpfs
// and is enough after a daemon crash, but a reboot in that window loses it
// while host-local keeps the IP on disk. libcni's result cache (on the
// root disk too) lets the start-up GC run DEL for an attachment whose ADD
// finished; one whose ADD was cut short by the reboot is only here (and
// the bridge plugin has no CNI GC of its own). The file is not fsynced: a
// daemon crash or a clean reboot keeps it (page cache); only a power cut
// in that window can lose it, as it loses the pod itself.

func (m *Manager) netJournalPath(id string) string {
	if m.opt.NetJournalDir == "" {
		return ""
	}
	return filepath.Join(m.opt.NetJournalDir, id+".json")
}

// journalNet records a before its ADD.
func (m *Manager) journalNet(id string, a *cni.Attachment) error {
	path := m.netJournalPath(id)
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(m.opt.NetJournalDir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// unjournalNet drops id's entry once a durable record or a DEL covers it.
func (m *Manager) unjournalNet(id string) {
	if path := m.netJournalPath(id); path != "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("remove network journal entry", "pod", id, "error", err)
		}
	}
}

// sweepNetJournal runs at start, after the records are loaded and the
// orphan pod dirs swept: an entry of a known pod is covered by its record;
// any other is a pod lost with its dir (a reboot during its setup), whose
// network only a DEL frees. Its netns is gone: DEL runs without one, which
// the plugins accept (host-local frees by container id).
func (m *Manager) sweepNetJournal(ctx context.Context, known map[string]bool) {
	if m.opt.NetJournalDir == "" {
		return
	}
	ents, err := os.ReadDir(m.opt.NetJournalDir)
	if err != nil {
		return
	}
	for _, d := range ents {
		id, ok := strings.CutSuffix(d.Name(), ".json")
		if !ok {
			os.Remove(filepath.Join(m.opt.NetJournalDir, d.Name())) // a .tmp of a write that died
			continue
		}
		if known[id] {
			m.unjournalNet(id)
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.opt.NetJournalDir, d.Name()))
		a := new(cni.Attachment)
		if err == nil {
			err = json.Unmarshal(b, a)
		}
		if err != nil {
			m.log.Warn("unreadable network journal entry; removed", "pod", id, "error", err)
			m.unjournalNet(id)
			continue
		}
		a.NetNS = ""
		if err := m.cni.Del(ctx, a); err != nil {
			m.log.Error("release the network of a pod lost with its dir; retried at the next start", "pod", id, "error", err)
			continue
		}
		m.unjournalNet(id)
		m.log.Info("released the network of a pod lost with its dir", "pod", id)
	}
}
