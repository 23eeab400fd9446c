package oci

import (
	"context"
	"fmt"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci/cgroups"
)

var defaultCgroupFactory CgroupFactory = func(p string) (CgroupManager, error) { return cgroups.New(p) }

// Stats returns the resource usage of a container's cgroup.
func (r *Runtime) Stats(ctx context.Context, id string) (*cgroups.Stats, error) {
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	m, err := r.newCgroup(st.CgroupsPath)
	if err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	sm, ok := m.(interface {
		Stats() (*cgroups.Stats, error)
	})
	if !ok {
		return nil, errdefs.Unimplemented("stats of container %s: cgroup manager has no stats", id)
	}
	s, err := sm.Stats()
	if err != nil {
		return nil, fmt.Errorf("read stats of container %s: %w", id, err)
	}
	return s, nil
}
