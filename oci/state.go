package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// containerState is StateDir/<id>/state.json.
type containerState struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pidStart"` // /proc/<pid>/stat starttime: guards against pid reuse
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	CgroupsPath string            `json:"cgroupsPath"`
	CgroupMade  []string          `json:"cgroupMade,omitempty"` // dirs the create made (parents too): Delete removes them
	Paused      bool              `json:"paused,omitempty"`
	Spec        *specs.Spec       `json:"spec"`
	Annotations map[string]string `json:"annotations,omitempty"`
	raw         json.RawMessage   // Spec's JSON as given (CreateBundleRaw): saved as is
}

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

func (r *Runtime) dir(id string) string { return filepath.Join(r.cfg.StateDir, id) }

// stateJSON is containerState as state.json holds it: its spec goes
// through specJSON (encodeSpec, DecodeSpec). The outer Spec hides the
// embedded one from encoding/json.
type stateJSON struct {
	*containerState
	Spec json.RawMessage `json:"spec"`
}

func (r *Runtime) save(st *containerState) error {
	spec, err := st.raw, error(nil)
	if spec == nil {
		if spec, err = encodeSpec(st.Spec); err != nil {
			return fmt.Errorf("encode state: %w", err)
		}
	}
	b, err := json.Marshal(stateJSON{containerState: st, Spec: spec})
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := filepath.Join(r.dir(st.ID), stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir(st.ID), stateFile)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

func (r *Runtime) load(id string) (*containerState, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.dir(id), stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("container %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	w := stateJSON{containerState: &containerState{}}
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", id, err)
	}
	if len(w.Spec) > 0 && string(w.Spec) != "null" {
		if w.containerState.Spec, err = DecodeSpec(w.Spec); err != nil {
			return nil, fmt.Errorf("decode state of %s: spec: %w", id, err)
		}
	}
	return w.containerState, nil
}

// lock takes the container's flock; the returned func releases it.
func (r *Runtime) lock(id string) (func(), error) {
	fd, err := unix.Open(r.dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, errdefs.NotFound("container %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("lock container %s: %w", id, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock container %s: %w", id, err)
	}
	return func() { unix.Close(fd) }, nil
}

// pidStart returns the start time of pid in clock ticks, 0 if it is gone.
// A zombie counts as gone: the container's process has exited.
func pidStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func (st *containerState) alive() bool {
	return st.Pid > 0 && pidStart(st.Pid) == st.PidStart
}

func (r *Runtime) status(st *containerState) specs.ContainerState {
	if !st.alive() {
		return specs.StateStopped
	}
	if _, err := os.Lstat(filepath.Join(r.dir(st.ID), fifoName)); err == nil {
		return specs.StateCreated
	}
	if st.Paused {
		return "paused"
	}
	return specs.StateRunning
}

func (r *Runtime) ociState(st *containerState) *specs.State {
	s := &specs.State{
		Version:     specs.Version,
		ID:          st.ID,
		Status:      r.status(st),
		Bundle:      st.Bundle,
		Annotations: st.Annotations,
	}
	if s.Status != specs.StateStopped {
		s.Pid = st.Pid
	}
	return s
}
