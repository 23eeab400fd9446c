package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ExitFile is the name of the exit record in a container's bundle dir.
const ExitFile = "exit.json"

// Exit is what the monitor records when the container's init is reaped. It
// outlives both processes: a daemon that was down reads it on restart.
type Exit struct {
	Code      int       `json:"code"` // exit code, or 128+signal
	Signal    int       `json:"signal,omitempty"`
	ExitedAt  time.Time `json:"exited_at"`
	OOMKilled bool      `json:"oom_killed,omitempty"`
	// Message explains an exit the container did not cause (the monitor
	// failed to start it, or lost it).
	Message string `json:"message,omitempty"`
}

// WriteExit stores e in dir atomically: a temp file, fsync, rename, so that
// a reader never sees half a record even if the node crashes.
func WriteExit(dir string, e Exit) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode exit record: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".exit-*")
	if err != nil {
		return fmt.Errorf("write exit record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write exit record: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync exit record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close exit record: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, ExitFile)); err != nil {
		return fmt.Errorf("rename exit record: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// ReadExit returns the exit record in dir; os.ErrNotExist when there is none.
func ReadExit(dir string) (*Exit, error) {
	data, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode exit record: %w", err)
	}
	return &e, nil
}

// HasExit reports whether dir holds an exit record.
func HasExit(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ExitFile))
	return !errors.Is(err, os.ErrNotExist)
}
