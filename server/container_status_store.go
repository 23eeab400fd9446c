package server

// The container state machine. Every change of a container's status goes
// through containerStore.update, which checks the transition, checkpoints
// the whole record to the store, and only then publishes it in memory, so
// that what Status and List answer (from memory, never by asking
// processes) is always what a restarted daemon would reload.
//
//	        CreateContainer
//	               |
//	               v
//	           CREATED ------------------------+
//	               |                           |  start failed (ContainerCannotRun),
//	        StartContainer                     |  killed before start,
//	               |                           |  monitor lost
//	               v                           v
//	           RUNNING --- init reaped ----> EXITED
//	               |     (or monitor lost)     |
//	               |                           |
//	               +------ RemoveContainer ----+--> removed (record deleted)
//	                 (kills a running one first)
//
// UNKNOWN is never stored: a reloaded container whose monitor cannot be
// asked and left no exit record is EXITED with code 255 and a message, not
// reported running (the CRI-O issue 6295 failure).

import (
	"fmt"
	"sort"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/store"
)

// Exit reasons the kubelet shows.
const (
	reasonCompleted = "Completed"
	reasonError     = "Error"
	reasonOOMKilled = "OOMKilled"
	reasonCannotRun = "ContainerCannotRun"
	exitCodeUnknown = 255
)

// containerStatus is the mutable part of a container.
type containerStatus struct {
	State      runtime.ContainerState           `json:"state"`
	Pid        int                              `json:"pid,omitempty"`
	CreatedAt  time.Time                        `json:"created_at"`
	StartedAt  time.Time                        `json:"started_at,omitzero"`
	FinishedAt time.Time                        `json:"finished_at,omitzero"`
	ExitCode   int32                            `json:"exit_code"`
	Reason     string                           `json:"reason,omitempty"`
	Message    string                           `json:"message,omitempty"`
	Resources  *runtime.LinuxContainerResources `json:"resources,omitempty"`
}

// containerRecord is what the store keeps; everything but Status is fixed
// at create.
type containerRecord struct {
	ID          string                     `json:"id"`
	Name        string                     `json:"name"` // registrar name
	PodID       string                     `json:"pod_id"`
	Metadata    *runtime.ContainerMetadata `json:"metadata"`
	Labels      map[string]string          `json:"labels,omitempty"`
	Annotations map[string]string          `json:"annotations,omitempty"`
	Image       *runtime.ImageSpec         `json:"image"`
	ImageID     string                     `json:"image_id"`
	ImageRef    string                     `json:"image_ref"`
	LogPath     string                     `json:"log_path,omitempty"`
	Mounts      []*runtime.Mount           `json:"mounts,omitempty"`
	User        specs.User                 `json:"user"`
	StopSignal  int                        `json:"stop_signal"`
	Bundle      string                     `json:"bundle"`
	Status      containerStatus            `json:"status"`
}

// container is the in-memory entry. rec is replaced whole on update, so a
// reader holding an old *containerRecord sees a consistent snapshot.
type container struct {
	// mu serializes updates of this container; readers never take it.
	mu     sync.Mutex
	rec    *containerRecord
	exited chan struct{} // closed when the state becomes EXITED

	// The spec's process, read once for exec (container_exec.go).
	procMu sync.Mutex
	proc   *specs.Process
}

type containerStore struct {
	db    *store.DB
	names *store.Registrar

	mu   sync.RWMutex
	ctrs map[string]*container
}

func newContainerStore(db *store.DB) *containerStore {
	return &containerStore{db: db, names: store.NewRegistrar(), ctrs: map[string]*container{}}
}

// add persists a new record and publishes it.
func (cs *containerStore) add(r *containerRecord) error {
	if err := cs.db.Put(store.BucketContainers, r.ID, r); err != nil {
		return fmt.Errorf("store container: %w", err)
	}
	c := &container{rec: r, exited: make(chan struct{})}
	if r.Status.State == runtime.ContainerState_CONTAINER_EXITED {
		close(c.exited)
	}
	cs.mu.Lock()
	cs.ctrs[r.ID] = c
	cs.mu.Unlock()
	return nil
}

// get returns the current snapshot of id.
func (cs *containerStore) get(id string) (*containerRecord, *container, error) {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	c, ok := cs.ctrs[id]
	if !ok {
		return nil, nil, errdefs.NotFound("container %s", id)
	}
	return c.rec, c, nil
}

// resolve accepts a full id or a unique prefix, as crictl does.
func (cs *containerStore) resolve(id string) (*containerRecord, *container, error) {
	if id == "" {
		return nil, nil, errdefs.InvalidArgument("container id is empty")
	}
	if r, c, err := cs.get(id); err == nil {
		return r, c, nil
	}
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	var found *container
	for k, c := range cs.ctrs {
		if len(k) > len(id) && k[:len(id)] == id {
			if found != nil {
				return nil, nil, errdefs.InvalidArgument("container id prefix %q is ambiguous", id)
			}
			found = c
		}
	}
	if found == nil {
		return nil, nil, errdefs.NotFound("container %s", id)
	}
	return found.rec, found, nil
}

// list returns snapshots sorted by creation time.
func (cs *containerStore) list() []*containerRecord {
	cs.mu.RLock()
	out := make([]*containerRecord, 0, len(cs.ctrs))
	for _, c := range cs.ctrs {
		out = append(out, c.rec)
	}
	cs.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Status.CreatedAt.Before(out[j].Status.CreatedAt) })
	return out
}

// validTransition says which state changes the machine allows.
func validTransition(from, to runtime.ContainerState) bool {
	switch {
	case from == to:
		return true
	case from == runtime.ContainerState_CONTAINER_CREATED:
		return to == runtime.ContainerState_CONTAINER_RUNNING || to == runtime.ContainerState_CONTAINER_EXITED
	case from == runtime.ContainerState_CONTAINER_RUNNING:
		return to == runtime.ContainerState_CONTAINER_EXITED
	}
	return false
}

// update is the one way a status changes: fn edits a copy; the copy is
// checked, checkpointed, then published. An error from fn leaves all as is.
func (cs *containerStore) update(id string, fn func(*containerStatus) error) (*containerRecord, error) {
	cs.mu.RLock()
	c, ok := cs.ctrs[id]
	cs.mu.RUnlock()
	if !ok {
		return nil, errdefs.NotFound("container %s", id)
	}
	// The fsync of the checkpoint happens under the container's own lock
	// only, so List and Status of every other container never wait on it.
	c.mu.Lock()
	defer c.mu.Unlock()
	cs.mu.RLock()
	cur := c.rec
	_, still := cs.ctrs[id]
	cs.mu.RUnlock()
	if !still {
		return nil, errdefs.NotFound("container %s", id)
	}
	next := *cur
	st := next.Status
	if err := fn(&st); err != nil {
		return nil, err
	}
	if !validTransition(next.Status.State, st.State) {
		return nil, errdefs.FailedPrecondition("container %s: cannot go from %s to %s", id, stateName(next.Status.State), stateName(st.State))
	}
	next.Status = st
	if err := cs.db.Put(store.BucketContainers, id, &next); err != nil {
		return nil, fmt.Errorf("checkpoint container: %w", err)
	}
	cs.mu.Lock()
	c.rec = &next
	cs.mu.Unlock()
	if cur.Status.State != runtime.ContainerState_CONTAINER_EXITED && st.State == runtime.ContainerState_CONTAINER_EXITED {
		close(c.exited)
	}
	return &next, nil
}

// remove deletes the record everywhere; removing the absent is a no-op.
func (cs *containerStore) remove(id string) error {
	cs.mu.RLock()
	c, ok := cs.ctrs[id]
	cs.mu.RUnlock()
	if ok {
		// An update in flight must not write the record back after this.
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	if err := cs.db.Delete(store.BucketContainers, id); err != nil {
		return fmt.Errorf("delete container record: %w", err)
	}
	cs.mu.Lock()
	if c, ok := cs.ctrs[id]; ok {
		cs.names.Release(c.rec.Name)
		delete(cs.ctrs, id)
	}
	cs.mu.Unlock()
	return nil
}

func stateName(s runtime.ContainerState) string {
	return runtime.ContainerState_name[int32(s)]
}

// exitReason is the kubelet's reason for an exit.
func exitReason(code int32, oom bool) string {
	switch {
	case oom:
		return reasonOOMKilled
	case code == 0:
		return reasonCompleted
	default:
		return reasonError
	}
}
