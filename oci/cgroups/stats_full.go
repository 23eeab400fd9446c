package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// What only the metric RPCs export (cAdvisor's container_processes,
// container_file_descriptors, container_sockets and the blkio series),
// read by a StatsReader with Full set.

// ProcsStats counts the processes in the cgroup itself (its cgroup.procs,
// not its descendants', as cAdvisor counts them) and their open files.
type ProcsStats struct {
	Processes uint64
	FDs       uint64
	Sockets   uint64 // fds whose link reads "socket:[inode]"
}

// BlkioDevice is one block device's cumulative I/O: v1 from the bfq or
// throttle *_recursive files, v2 from io.stat.
type BlkioDevice struct {
	Major, Minor uint32
	ReadBytes    uint64
	WriteBytes   uint64
	Reads        uint64 // completed read requests
	Writes       uint64
}

// readProcs fills s.Procs from dir/cgroup.procs and /proc/<pid>/fd. A
// process that exits between the two reads is skipped, not an error.
func (r *StatsReader) readProcs(dir string, s *Stats) error {
	// Opened afresh each time, unlike the counters: v1 keeps the pid list
	// an open file loaded first and serves it again for a while.
	b, err := readInto(r.buf, dir+"/cgroup.procs")
	r.buf = b[:0]
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			if _, serr := os.Stat(dir); serr != nil {
				return fmt.Errorf("read stats %s: %w", dir, errdefs.NotFound("cgroup %s is gone", dir))
			}
			return nil
		}
		return fmt.Errorf("read stats %s/cgroup.procs: %w", dir, classify(err))
	}
	var pids []int
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) == 0 {
			continue
		}
		pid, err := strconv.Atoi(string(line))
		if err != nil {
			return fmt.Errorf("read stats %s/cgroup.procs: bad pid %q", dir, line)
		}
		pids = append(pids, pid)
	}
	p := &s.Procs
	p.Processes = uint64(len(pids))
	link := make([]byte, 64)
	for _, pid := range pids {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("read fds of pid %d: %w", pid, err)
		}
		names, _ := f.Readdirnames(-1)
		p.FDs += uint64(len(names))
		for _, n := range names {
			k, err := unix.Readlinkat(int(f.Fd()), n, link)
			if err == nil && bytes.HasPrefix(link[:k], []byte("socket:")) {
				p.Sockets++
			}
		}
		f.Close()
	}
	return nil
}

func (s *Stats) blkioDevice(major, minor uint32) *BlkioDevice {
	for i := range s.Blkio {
		if s.Blkio[i].Major == major && s.Blkio[i].Minor == minor {
			return &s.Blkio[i]
		}
	}
	s.Blkio = append(s.Blkio, BlkioDevice{Major: major, Minor: minor})
	return &s.Blkio[len(s.Blkio)-1]
}

// parseDev parses "8:16".
func parseDev(b []byte) (major, minor uint32, ok bool) {
	i := bytes.IndexByte(b, ':')
	if i <= 0 {
		return 0, 0, false
	}
	ma, err1 := parseUint(b[:i])
	mi, err2 := parseUint(b[i+1:])
	return uint32(ma), uint32(mi), err1 == nil && err2 == nil
}

// readBlkioV1 reads the bfq files when the device's scheduler is bfq and
// they carry data, else the throttle files, which count every bio (the
// order libcontainer and so cAdvisor use; CFQ is gone from the kernel).
func (r *StatsReader) readBlkioV1(dir string, s *Stats) error {
	for _, f := range []struct {
		bfq, throttle string
		bytes         bool
	}{
		{"blkio.bfq.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive", true},
		{"blkio.bfq.io_serviced_recursive", "blkio.throttle.io_serviced_recursive", false},
	} {
		ok, err := r.read(dir, f.bfq)
		if err != nil {
			return err
		}
		if !ok || !bytes.Contains(r.buf, []byte(":")) {
			if ok, err = r.read(dir, f.throttle); err != nil || !ok {
				return err
			}
		}
		// Lines: "8:0 Read 4096"; the last one is "Total N".
		for b := r.buf; len(b) > 0; {
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line, b = b[:i], b[i+1:]
			} else {
				b = nil
			}
			fs := bytes.Fields(line)
			if len(fs) != 3 {
				continue
			}
			major, minor, ok := parseDev(fs[0])
			v, err := parseUint(fs[2])
			if !ok || err != nil {
				continue
			}
			var rd, wr *uint64
			d := s.blkioDevice(major, minor)
			if f.bytes {
				rd, wr = &d.ReadBytes, &d.WriteBytes
			} else {
				rd, wr = &d.Reads, &d.Writes
			}
			switch string(fs[1]) {
			case "Read":
				*rd = v
			case "Write":
				*wr = v
			}
		}
	}
	return nil
}

// readIoV2 reads io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
func (r *StatsReader) readIoV2(dir string, s *Stats) error {
	ok, err := r.read(dir, "io.stat")
	if err != nil || !ok {
		return err
	}
	for b := r.buf; len(b) > 0; {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		fs := bytes.Fields(line)
		if len(fs) < 2 {
			continue
		}
		major, minor, ok := parseDev(fs[0])
		if !ok {
			continue
		}
		d := s.blkioDevice(major, minor)
		for _, kv := range fs[1:] {
			i := bytes.IndexByte(kv, '=')
			if i <= 0 {
				continue
			}
			v, err := parseUint(kv[i+1:])
			if err != nil {
				continue
			}
			switch string(kv[:i]) {
			case "rbytes":
				d.ReadBytes = v
			case "wbytes":
				d.WriteBytes = v
			case "rios":
				d.Reads = v
			case "wios":
				d.Writes = v
			}
		}
	}
	return nil
}
