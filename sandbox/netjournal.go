package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cri-server/cri-server/cni"
)

// The network journal keeps, on the root disk, each CNI attachment from
// just before its ADD until the pod's store commit is done (or its DEL
// has run). The pod dir's copy (attachmentFile) lives on the state tmpfs
// and is enough after a daemon crash, but a reboot in that window loses it
// while host-local keeps the IP on disk. libcni's result cache (on the
// root disk too) lets the start-up GC run DEL for an attachment whose ADD
// finished; one whose ADD was cut short by the reboot is only here (and
// the bridge plugin has no CNI GC of its own).
//
// It is one append-only file of JSON lines, an "add" before ADD and a
// "done" after, rather than a file per pod: creating and deleting an inode
// per pod on the root disk cost a burst of 50 pod starts about a third of
// the daemon's own CPU (ext4 searches its inode tables for a free inode
// not recently deleted). The file is not fsynced: a daemon crash or a
// clean reboot keeps it (page cache); only a power cut in that window can
// lose it, as it loses the pod itself. A line torn by a crash is skipped.
// Entries written by older versions, one <id>.json file per pod, are
// still read and swept.

// netJournalFile is the log's name in Options.NetJournalDir.
const netJournalFile = "journal"

// netJournalCompactAt is the log size past which a "done" rewrites it with
// only the pending entries.
const netJournalCompactAt = 1 << 20

// netJournalLine is one line of the log.
type netJournalLine struct {
	ID   string          `json:"id"`
	Add  *cni.Attachment `json:"add,omitempty"`
	Done bool            `json:"done,omitempty"`
}

// netJournal is the open log: its pending lines are kept for compaction.
type netJournal struct {
	mu      sync.Mutex
	f       *os.File
	size    int64
	pending map[string][]byte
}

// journalNet records a before its ADD.
func (m *Manager) journalNet(id string, a *cni.Attachment) error {
	if m.opt.NetJournalDir == "" {
		return nil
	}
	line, err := json.Marshal(netJournalLine{ID: id, Add: a})
	if err != nil {
		return err
	}
	j := &m.netj
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.append(m.opt.NetJournalDir, append(line, '\n')); err != nil {
		return err
	}
	j.pending[id] = append(line, '\n')
	return nil
}

// unjournalNet drops id's entry once a durable record or a DEL covers it.
func (m *Manager) unjournalNet(id string) {
	if m.opt.NetJournalDir == "" {
		return
	}
	j := &m.netj
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.pending[id]; !ok {
		return // never journaled (host network), or already done
	}
	line, _ := json.Marshal(netJournalLine{ID: id, Done: true})
	if err := j.append(m.opt.NetJournalDir, append(line, '\n')); err != nil {
		m.log.Warn("journal the end of a pod's network setup", "pod", id, "error", err)
		return
	}
	delete(j.pending, id)
	if j.size > netJournalCompactAt {
		if err := j.rewrite(m.opt.NetJournalDir); err != nil {
			m.log.Warn("compact the network journal", "error", err)
		}
	}
}

// append writes one line with a single write(2), opening the log first if
// needed. Called with mu held.
func (j *netJournal) append(dir string, line []byte) error {
	if j.f == nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, netJournalFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		j.f, j.size = f, st.Size()
		if j.pending == nil {
			j.pending = map[string][]byte{}
		}
	}
	n, err := j.f.Write(line)
	j.size += int64(n)
	return err
}

// rewrite replaces the log with its pending lines (none: no file). Called
// with mu held.
func (j *netJournal) rewrite(dir string) error {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	path := filepath.Join(dir, netJournalFile)
	if len(j.pending) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	var b bytes.Buffer
	for _, l := range j.pending {
		b.Write(l)
	}
	return writeFileAtomic(path, b.Bytes())
}

// close closes the log (the Manager's Close).
func (j *netJournal) close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// ReadNetJournal returns the attachments journaled in dir whose pods have
// neither been committed nor torn down, by pod id. The map holds what
// could be read even when the error says some could not.
func ReadNetJournal(dir string) (map[string]*cni.Attachment, error) {
	out := map[string]*cni.Attachment{}
	var errs []error
	f, err := os.Open(filepath.Join(dir, netJournalFile))
	if err == nil {
		err = readNetJournal(f, out)
		f.Close()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	// Older versions' entries: one file per pod.
	old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range old {
		id := strings.TrimSuffix(filepath.Base(p), ".json")
		a := new(cni.Attachment)
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, a)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network journal entry %s: %w", filepath.Base(p), err))
			continue
		}
		out[id] = a
	}
	return out, errors.Join(errs...)
}

func readNetJournal(r io.Reader, out map[string]*cni.Attachment) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l netJournalLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.ID == "" {
			continue // torn by a crash
		}
		if l.Done {
			delete(out, l.ID)
		} else if l.Add != nil {
			out[l.ID] = l.Add
		}
	}
	return sc.Err()
}

// sweepNetJournal runs at start, after the records are loaded and the
// orphan pod dirs swept: an entry of a known pod is covered by its record;
// any other is a pod lost with its dir (a reboot during its setup), whose
// network only a DEL frees. Its netns is gone: DEL runs without one, which
// the plugins accept (host-local frees by container id). What DEL could
// not free stays journaled for the next start.
func (m *Manager) sweepNetJournal(ctx context.Context, known map[string]bool) {
	dir := m.opt.NetJournalDir
	if dir == "" {
		return
	}
	ents, err := ReadNetJournal(dir)
	if err != nil {
		m.log.Warn("network journal entries unreadable; skipped", "error", err)
	}
	j := &m.netj
	j.mu.Lock()
	defer j.mu.Unlock()
	j.pending = map[string][]byte{}
	for id, a := range ents {
		if known[id] {
			continue
		}
		a.NetNS = ""
		if err := m.cni.Del(ctx, a); err != nil {
			m.log.Error("release the network of a pod lost with its dir; retried at the next start", "pod", id, "error", err)
			line, _ := json.Marshal(netJournalLine{ID: id, Add: a})
			j.pending[id] = append(line, '\n')
			continue
		}
		m.log.Info("released the network of a pod lost with its dir", "pod", id)
	}
	if err := j.rewrite(dir); err != nil {
		m.log.Warn("rewrite the network journal", "error", err)
		return
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.json*")) // older entries, and their .tmp
	for _, p := range old {
		os.Remove(p)
	}
}
