package cgroups

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cri-server/cri-server/errdefs"
	"golang.org/x/sys/unix"
)

// StatsReader reads the stats of many cgroups one after another with reused
// buffers and no allocation per file, so ListContainerStats for 100
// containers is one pass over the tree: no goroutine and no round trip per
// container. It keeps each file it read open and rereads it with pread at
// offset 0 (kernfs regenerates the content), which costs a tenth of an
// open/read/close; Close releases them. Not safe for concurrent use.
type StatsReader struct {
	// Full also reads what CRI stats do not need: cpu throttling, user and
	// system time (v1), the pids limit, OOM kills, hugetlb, memory failcnt,
	// peak and kernel usage, processes with their fds (stats_full.go) and
	// block I/O.
	Full bool
	buf  []byte
	path []byte
	// fds caches open files by path; -1 marks a file this kernel lacks.
	fds   map[string]*cachedFd
	gen   uint64
	cache bool
}

type cachedFd struct {
	fd  int
	gen uint64
}

// NewStatsReader returns a reader that keeps files open between reads.
func NewStatsReader() *StatsReader {
	return &StatsReader{buf: make([]byte, 0, 8192), path: make([]byte, 0, 512),
		fds: map[string]*cachedFd{}, cache: true}
}

// Close closes the files the reader keeps open.
func (r *StatsReader) Close() {
	for k, c := range r.fds {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		delete(r.fds, k)
	}
}

type statser interface {
	readStats(r *StatsReader, s *Stats) error
}

// Read fills s with m's stats.
func (r *StatsReader) Read(m Manager, s *Stats) error {
	st, ok := m.(statser)
	if !ok {
		return errUnsupported("manager %T cannot be read by StatsReader", m)
	}
	*s = Stats{Timestamp: time.Now()}
	return st.readStats(r, s)
}

// ReadMany fills out[i] for ms[i] (out must be as long as ms) and returns
// one error per manager, or nil when all succeeded. A container whose
// cgroup is gone gets an error wrapping errdefs.ErrNotFound.
func (r *StatsReader) ReadMany(ms []Manager, out []Stats) []error {
	r.gen++
	defer r.sweep()
	var errs []error
	for i, m := range ms {
		if err := r.Read(m, &out[i]); err != nil {
			if errs == nil {
				errs = make([]error, len(ms))
			}
			errs[i] = err
		}
	}
	return errs
}

// sweep closes files not read by the last two ReadMany calls: their
// containers are gone or filtered out, and fds must not pile up.
func (r *StatsReader) sweep() {
	for k, c := range r.fds {
		if c.gen+1 < r.gen {
			if c.fd >= 0 {
				unix.Close(c.fd)
			}
			delete(r.fds, k)
		}
	}
}

// readerPool serves Manager.Stats; its readers cache nothing, so a pooled
// reader never pins files of a removed cgroup.
var readerPool = sync.Pool{New: func() any {
	return &StatsReader{buf: make([]byte, 0, 8192), path: make([]byte, 0, 512)}
}}

func statsOf(m Manager) (*Stats, error) {
	r := readerPool.Get().(*StatsReader)
	defer readerPool.Put(r)
	r.Full = true
	s := new(Stats)
	if err := r.Read(m, s); err != nil {
		return nil, err
	}
	return s, nil
}

var atFdcwd = unix.AT_FDCWD

// read reads dir/file into r.buf. Absent files (a controller not mounted or
// not enabled) are not errors: ok is false.
func (r *StatsReader) read(dir, file string) (ok bool, err error) {
	r.path = append(append(append(r.path[:0], dir...), '/'), file...)
	if r.cache {
		if c, hit := r.fds[string(r.path)]; hit { // no allocation for the lookup
			c.gen = r.gen
			if c.fd < 0 {
				return false, nil
			}
			if r.pread(c.fd) == nil {
				return true, nil
			}
			// ENODEV: the cgroup was removed (maybe recreated); reopen.
			unix.Close(c.fd)
			delete(r.fds, string(r.path))
		}
	}
	r.path = append(r.path, 0)
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(atFdcwd), uintptr(unsafe.Pointer(&r.path[0])),
		uintptr(unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
	r.path = r.path[:len(r.path)-1]
	if e != 0 {
		if e == unix.ENOENT {
			if _, serr := os.Stat(dir); serr != nil {
				return false, fmt.Errorf("read stats %s: %w", dir, errdefs.NotFound("cgroup %s is gone", dir))
			}
			if r.cache {
				r.fds[string(r.path)] = &cachedFd{fd: -1, gen: r.gen}
			}
			return false, nil
		}
		return false, fmt.Errorf("read stats %s/%s: %w", dir, file, classify(e))
	}
	if err := r.pread(int(fd)); err != nil {
		unix.Close(int(fd))
		return false, fmt.Errorf("read stats %s/%s: %w", dir, file, classify(err))
	}
	if r.cache {
		r.fds[string(r.path)] = &cachedFd{fd: int(fd), gen: r.gen}
	} else {
		unix.Close(int(fd))
	}
	return true, nil
}

// pread reads the whole file from offset 0 into r.buf.
func (r *StatsReader) pread(fd int) error {
	r.buf = r.buf[:0]
	for {
		if len(r.buf) == cap(r.buf) {
			r.buf = append(r.buf, 0)[:len(r.buf)]
		}
		n, err := unix.Pread(fd, r.buf[len(r.buf):cap(r.buf)], int64(len(r.buf)))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		r.buf = r.buf[:len(r.buf)+n]
	}
}

// readUint reads a one-number file; absent reads as 0.
func (r *StatsReader) readUint(dir, file string) (uint64, error) {
	ok, err := r.read(dir, file)
	if !ok || err != nil {
		return 0, err
	}
	v, err := parseUint(r.buf)
	if err != nil {
		return 0, fmt.Errorf("read stats %s/%s: %w", dir, file, err)
	}
	return v, nil
}

// limit turns "max" and v1's page-rounded LONG_MAX into 0, "unlimited".
func limit(v uint64) uint64 {
	if v >= 1<<62 {
		return 0
	}
	return v
}

func (s *MemoryStats) finish() {
	s.WorkingSet = 0
	if s.Usage > s.InactiveFile {
		s.WorkingSet = s.Usage - s.InactiveFile
	}
	s.Limit = limit(s.Limit)
	s.SwapLimit = limit(s.SwapLimit)
	if s.Limit > s.WorkingSet {
		s.Available = s.Limit - s.WorkingSet
	}
}

// hugeSize is one huge page size with its cgroup file names built once.
type hugeSize struct {
	name                      string // "2MB"
	v2Current, v2Events       string
	v1Usage, v1Max, v1Failcnt string
}

// hugePageSizes lists the host's page sizes as the kernel names cgroup
// files ("2MB", "1GB"), read once.
var hugePageSizes = sync.OnceValue(func() []hugeSize {
	entries, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	var out []hugeSize
	for _, e := range entries {
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB"), 10, 64)
		if err != nil {
			continue
		}
		n := pageSizeName(kb)
		out = append(out, hugeSize{name: n,
			v2Current: "hugetlb." + n + ".current", v2Events: "hugetlb." + n + ".events",
			v1Usage: "hugetlb." + n + ".usage_in_bytes", v1Max: "hugetlb." + n + ".max_usage_in_bytes",
			v1Failcnt: "hugetlb." + n + ".failcnt"})
	}
	return out
})

func pageSizeName(kb uint64) string {
	switch {
	case kb >= 1<<20 && kb%(1<<20) == 0:
		return strconv.FormatUint(kb>>20, 10) + "GB"
	case kb >= 1<<10 && kb%(1<<10) == 0:
		return strconv.FormatUint(kb>>10, 10) + "MB"
	}
	return strconv.FormatUint(kb, 10) + "KB"
}

// readHugetlbV2 reads hugetlb.<size>.current and the "max" count of
// hugetlb.<size>.events from a unified directory.
func (r *StatsReader) readHugetlbV2(dir string, s *Stats) error {
	for _, size := range hugePageSizes() {
		ok, err := r.read(dir, size.v2Current)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var h HugetlbStats
		if h.Usage, err = parseUint(r.buf); err != nil {
			return fmt.Errorf("read stats %s: %w", dir, err)
		}
		if ok, err = r.read(dir, size.v2Events); err != nil {
			return err
		} else if ok {
			eachKV(r.buf, func(k []byte, v uint64) {
				if bytes.Equal(k, []byte("max")) {
					h.Failcnt = v
				}
			})
		}
		if s.Hugetlb == nil {
			s.Hugetlb = map[string]HugetlbStats{}
		}
		s.Hugetlb[size.name] = h
	}
	return nil
}

func (m *v2Manager) Stats() (*Stats, error) { return statsOf(m) }

func (m *v2Manager) readStats(r *StatsReader, s *Stats) error {
	d := m.dir
	if m.hybrid {
		// Hybrid: only hugetlb lives here; the v1 manager reads the rest.
		if r.Full {
			return r.readHugetlbV2(d, s)
		}
		return nil
	}
	ok, err := r.read(d, "cpu.stat")
	if err != nil {
		return err
	}
	if ok {
		c := &s.CPU
		eachKV(r.buf, func(k []byte, v uint64) {
			switch string(k) { // no allocation: the compiler compares in place
			case "usage_usec":
				c.UsageNanos = v * 1000
			case "user_usec":
				c.UserNanos = v * 1000
			case "system_usec":
				c.SystemNanos = v * 1000
			case "nr_periods":
				c.Periods = v
			case "nr_throttled":
				c.ThrottledPeriods = v
			case "throttled_usec":
				c.ThrottledNanos = v * 1000
			}
		})
	}
	mem := &s.Memory
	if mem.Usage, err = r.readUint(d, "memory.current"); err != nil {
		return err
	}
	if ok, err = r.read(d, "memory.stat"); err != nil {
		return err
	} else if ok {
		eachKV(r.buf, func(k []byte, v uint64) {
			switch string(k) {
			case "anon":
				mem.RSS = v
			case "file":
				mem.Cache = v
			case "inactive_file":
				mem.InactiveFile = v
			case "pgfault":
				mem.PageFaults = v
			case "pgmajfault":
				mem.MajorPageFaults = v
			case "file_mapped":
				mem.MappedFile = v
			case "kernel":
				mem.KernelUsage = v
			}
		})
	}
	if mem.Limit, err = r.readUint(d, "memory.max"); err != nil {
		return err
	}
	if mem.SwapUsage, err = r.readUint(d, "memory.swap.current"); err != nil {
		return err
	}
	// The CRI's swap_available_bytes needs the limit too.
	if mem.SwapLimit, err = r.readUint(d, "memory.swap.max"); err != nil {
		return err
	}
	if s.Pids.Current, err = r.readUint(d, "pids.current"); err != nil {
		return err
	}
	if r.Full {
		if err := m.readFullV2(r, s); err != nil {
			return err
		}
	}
	mem.finish()
	return nil
}

func (m *v2Manager) readFullV2(r *StatsReader, s *Stats) error {
	d := m.dir
	var err error
	if s.Pids.Limit, err = r.readUint(d, "pids.max"); err != nil {
		return err
	}
	s.Pids.Limit = limit(s.Pids.Limit)
	if ok, err := r.read(d, "memory.events"); err != nil {
		return err
	} else if ok {
		eachKV(r.buf, func(k []byte, v uint64) {
			switch string(k) {
			case "oom_kill":
				s.Memory.OOMKills = v
			case "max": // times usage hit memory.max: v1's failcnt
				s.Memory.Failcnt = v
			}
		})
	}
	// memory.peak exists since Linux 5.19.
	if s.Memory.MaxUsage, err = r.readUint(d, "memory.peak"); err != nil {
		return err
	}
	if err := r.readProcs(d, s); err != nil {
		return err
	}
	if err := r.readIoV2(d, s); err != nil {
		return err
	}
	return r.readHugetlbV2(d, s)
}
