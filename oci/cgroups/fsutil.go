package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cri-server/cri-server/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/internal/fastread"
)

// classErr keeps the kernel's error for errors.Is(err, unix.EINVAL) and adds
// an errdefs class for the gRPC boundary.
type classErr struct {
	err   error
	class error
}

func (c *classErr) Error() string   { return c.err.Error() }
func (c *classErr) Unwrap() []error { return []error{c.err, c.class} }

func classify(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESRCH):
		return &classErr{err, errdefs.ErrNotFound}
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ERANGE):
		return &classErr{err, errdefs.ErrInvalidArgument}
	case errors.Is(err, unix.EBUSY):
		return &classErr{err, errdefs.ErrFailedPrecondition}
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return &classErr{err, errdefs.ErrPermissionDenied}
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EAGAIN):
		return &classErr{err, errdefs.ErrResourceExhausted}
	}
	return err
}

func errUnsupported(format string, args ...any) error {
	return errdefs.New(errdefs.ErrNotImplemented, format, args...)
}

func errInvalid(format string, args ...any) error {
	return errdefs.InvalidArgument(format, args...)
}

// writeFile writes data to dir/file in one write(2), as cgroup files expect.
func writeFile(dir, file, data string) error {
	p := filepath.Join(dir, file)
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			if !fileExists(dir) {
				return fmt.Errorf("write %s: %w", p, errdefs.NotFound("cgroup %s does not exist", dir))
			}
			return fmt.Errorf("write %s: %w", p, errUnsupported("cgroup file %s does not exist (controller not enabled or kernel lacks it)", file))
		}
		return fmt.Errorf("open %s: %w", p, classify(err))
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(data))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %s %q: %w", p, data, classify(err))
	}
	return nil
}

// readInto reads a file into buf (grown as needed) with no other
// allocation: the stats path calls it thousands of times.
func readInto(buf []byte, path string) ([]byte, error) { return fastread.Into(buf, path) }

func readFile(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Join(dir, file), classify(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// parseUint reads a cgroup number; "max" and v1's "unlimited" page-rounded
// huge values become math.MaxUint64.
func parseUint(b []byte) (uint64, error) {
	b = trimSpace(b)
	if string(b) == "max" {
		return math.MaxUint64, nil
	}
	if len(b) > 0 && b[0] == '-' { // v1 cpu.cfs_quota_us -1
		return math.MaxUint64, nil
	}
	var v uint64
	if len(b) == 0 {
		return 0, errors.New("empty value")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number: %q", b)
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return math.MaxUint64, nil
		}
		v = v*10 + d
	}
	return v, nil
}

func readUint(dir, file string) (uint64, error) {
	b, err := readInto(make([]byte, 0, 64), filepath.Join(dir, file))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Join(dir, file), classify(err))
	}
	v, err := parseUint(b)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Join(dir, file), err)
	}
	return v, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eachKV calls f for every "key value" line of a flat-keyed file
// (memory.stat, cpu.stat, memory.events, memory.oom_control).
func eachKV(b []byte, f func(key []byte, val uint64)) {
	for len(b) > 0 {
		line := b
		if i := indexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		sp := indexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		v, err := parseUint(line[sp+1:])
		if err != nil {
			continue
		}
		f(line[:sp], v)
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// mkdirChain creates root/rel level by level and returns the directories it
// created, outermost first, so a failure or Destroy can remove exactly those.
// A parent can vanish under us (a sibling's Destroy removed the empty parent
// it had created): ENOENT restarts the walk a few times.
func mkdirChain(root, rel string, each func(dir string) error) ([]string, error) {
	if each == nil {
		// Usually the parents exist (a pod's cgroup, made by the sandbox):
		// one mkdir instead of one per level in each of the hierarchies.
		leaf := filepath.Join(root, rel)
		switch err := unix.Mkdir(leaf, 0o755); err {
		case nil:
			return []string{leaf}, nil
		case unix.EEXIST:
			return nil, nil
		}
	}
	var created []string
	for attempt := 0; ; attempt++ {
		dir, err := root, error(nil)
		for _, part := range splitPath(rel) {
			dir = filepath.Join(dir, part)
			err = unix.Mkdir(dir, 0o755)
			if err == unix.EEXIST {
				err = nil
				continue
			}
			if err != nil {
				break
			}
			created = append(created, dir)
			if each != nil {
				if err := each(dir); err != nil {
					rmdirAll(created)
					return nil, err
				}
			}
		}
		if err == nil {
			return created, nil
		}
		if err != unix.ENOENT || attempt == 3 {
			rmdirAll(created)
			return nil, fmt.Errorf("create cgroup %s: %w", dir, classify(err))
		}
	}
}

// rmdirAll removes dirs innermost first, ignoring the non-empty and gone.
func rmdirAll(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(dirs[i])
	}
}

// removeTree removes dir and every sub-cgroup, deepest first. A cgroup whose
// last task just exited can report EBUSY for a moment, so retry briefly.
// The common leaf goes with one rmdir; the directory is listed only when
// the kernel refuses (a v1 cgroup with children answers EBUSY, v2 ENOTEMPTY).
func removeTree(dir string) error {
	switch err := unix.Rmdir(dir); err {
	case nil, unix.ENOENT:
		return nil
	case unix.EBUSY, unix.ENOTEMPTY:
	default:
		return fmt.Errorf("remove cgroup %s: %w", dir, classify(err))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove cgroup %s: %w", dir, classify(err))
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || i == 10 {
			return fmt.Errorf("remove cgroup %s: %w", dir, classify(err))
		}
		time.Sleep(delay)
		if delay < 100*time.Millisecond {
			delay *= 2
		}
	}
}

// readPids reads cgroup.procs of dir and all its descendants.
func readPids(dir string, pids []int) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return pids, nil
		}
		return pids, fmt.Errorf("read pids %s: %w", dir, classify(err))
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return pids, fmt.Errorf("read pids %s: bad pid %q", dir, f)
		}
		pids = append(pids, pid)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return pids, nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if pids, err = readPids(filepath.Join(dir, e.Name()), pids); err != nil {
				return pids, err
			}
		}
	}
	return pids, nil
}

func signalPids(pids []int, sig unix.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("signal pid %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

func errTimeout(format string, args ...any) error {
	return errdefs.New(errdefs.ErrDeadlineExceeded, format, args...)
}

// readOOMKills reads the oom_kill counter of a flat keyed file: v1's
// memory.oom_control or v2's memory.events.
func readOOMKills(path string) (uint64, error) {
	b, err := readInto(make([]byte, 0, 256), path)
	if err != nil {
		return 0, fmt.Errorf("read oom kills %s: %w", filepath.Dir(path), classify(err))
	}
	var n uint64
	eachKV(b, func(k []byte, v uint64) {
		if bytes.Equal(k, []byte("oom_kill")) {
			n = v
		}
	})
	return n, nil
}
