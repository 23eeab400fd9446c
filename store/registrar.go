package store

import (
	"sync"

	"github.com/cri-server/cri-server/errdefs"
)

// Registrar reserves names for ids so that two creates of one name cannot
// race: the second gets AlreadyExists naming the holder, the message the
// kubelet parses to decide whether to retry.
type Registrar struct {
	mu    sync.Mutex
	names map[string]string // name -> id
}

// NewRegistrar returns an empty registrar.
func NewRegistrar() *Registrar {
	return &Registrar{names: map[string]string{}}
}

// Reserve takes name for id. Reserving a name again for the same id is fine.
func (r *Registrar) Reserve(name, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if holder, ok := r.names[name]; ok && holder != id {
		return errdefs.AlreadyExists("name %q is reserved for %q", name, holder)
	}
	r.names[name] = id
	return nil
}

// Release frees name; releasing a free name is a no-op.
func (r *Registrar) Release(name string) {
	r.mu.Lock()
	delete(r.names, name)
	r.mu.Unlock()
}

// Holder returns the id holding name, or "".
func (r *Registrar) Holder(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.names[name]
}
