package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Mode is how the host mounts cgroups.
type Mode int

const (
	ModeV1     Mode = iota + 1 // only v1 hierarchies
	ModeHybrid                 // v1 hierarchies plus a cgroup2 mount (e.g. /sys/fs/cgroup/unified)
	ModeV2                     // cgroup2 at /sys/fs/cgroup
)

func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "v1"
	case ModeHybrid:
		return "hybrid"
	case ModeV2:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Layout is where the hierarchies are mounted.
type Layout struct {
	Mode Mode
	// V1 maps a v1 controller ("cpu", "memory", "name=systemd") to its mount
	// point. Co-mounted controllers ("cpu,cpuacct") share one directory.
	V1 map[string]string
	// Unified is the cgroup2 mount point, "" without one.
	Unified string
	// Hierarchies are the cgroup and cgroup2 mounts in mountinfo order,
	// for whoever mounts them again (a container's /sys/fs/cgroup).
	Hierarchies []Hierarchy
}

// Hierarchy is one mount of a cgroup hierarchy.
type Hierarchy struct {
	Mountpoint string
	FSType     string // "cgroup" or "cgroup2"
	Options    string // super options without rw/ro: "cpu,cpuacct", "xattr,name=systemd"
}

var (
	layoutOnce sync.Once
	layoutVal  Layout
	layoutErr  error
)

// DetectLayout reads /proc/self/mountinfo once per process; mounts of
// cgroup hierarchies do not change under a running daemon. It stops once
// it has seen a mount of every hierarchy /proc/self/cgroup lists: they come
// early (mounted at boot), and a node's mount table grows with its
// containers, which the kernel would format for us to skip, in every
// command line and monitor.
func DetectLayout() (Layout, error) {
	layoutOnce.Do(func() {
		f, err := os.Open("/proc/self/mountinfo")
		if err != nil {
			layoutErr = fmt.Errorf("detect cgroup layout: %w", err)
			return
		}
		defer f.Close()
		layoutVal, layoutErr = parseLayoutUntil(f, selfHierarchies())
	})
	return layoutVal, layoutErr
}

// selfHierarchies counts the hierarchies of /proc/self/cgroup to wait for
// in mountinfo; 0 when unknown.
func selfHierarchies() int {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	return hierarchiesToWaitFor(b, v2AtConventionalPlace)
}

// hierarchiesToWaitFor counts the lines of /proc/self/cgroup (one per
// hierarchy), less the v2 one ("0::") when no cgroup2 is mounted where
// hosts mount it (v2Mounted): the kernel lists it once it has been
// mounted anywhere, in any mount namespace, so a namespace without it
// (runc's and crun's benchmarks unmount the hybrid's unified one) would
// otherwise read its whole mount table, which the kernel formats at ~2 µs
// a line (~0.5 ms with 200 mounts) in every command line. A cgroup2
// mounted elsewhere is still found if it comes before the last v1 mount.
func hierarchiesToWaitFor(procCgroup []byte, v2Mounted func() bool) int {
	n := bytes.Count(procCgroup, []byte("\n"))
	if (bytes.HasPrefix(procCgroup, []byte("0::")) || bytes.Contains(procCgroup, []byte("\n0::"))) && n > 1 && !v2Mounted() {
		n--
	}
	return n
}

// v2AtConventionalPlace says whether a cgroup2 is mounted at
// /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid).
func v2AtConventionalPlace() bool {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return true
		}
	}
	return false
}

// parseLayout finds cgroup and cgroup2 mounts in mountinfo. The first mount
// of each hierarchy wins; the one at /sys/fs/cgroup decides pure v2.
func parseLayout(r io.Reader) (Layout, error) { return parseLayoutUntil(r, 0) }

// parseLayoutUntil is parseLayout that stops reading once it has met want
// distinct hierarchies (superblocks); want 0 reads all. A hierarchy not
// mounted in our namespace keeps the count short, and so reads all.
func parseLayoutUntil(r io.Reader, want int) (Layout, error) {
	l := Layout{V1: map[string]string{}}
	seen := map[string]bool{} // major:minor of each hierarchy's superblock
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	for (want == 0 || len(seen) < want) && sc.Scan() {
		// Most mounts are not cgroups: skip them before allocating
		// (a busy node has hundreds, each container's rootfs and volumes).
		if !bytes.Contains(sc.Bytes(), []byte(" - cgroup")) {
			continue
		}
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+4 {
			continue
		}
		mnt := unescapeMount(fields[4])
		fstype, superOpts := fields[sep+1], fields[sep+3]
		if fstype == "cgroup" || fstype == "cgroup2" {
			seen[fields[2]] = true
			var keep []string
			for _, o := range strings.Split(superOpts, ",") {
				if o != "rw" && o != "ro" {
					keep = append(keep, o)
				}
			}
			l.Hierarchies = append(l.Hierarchies, Hierarchy{Mountpoint: mnt, FSType: fstype, Options: strings.Join(keep, ",")})
		}
		switch fstype {
		case "cgroup2":
			if l.Unified == "" || mnt == "/sys/fs/cgroup" {
				l.Unified = mnt
			}
		case "cgroup":
			for _, opt := range strings.Split(superOpts, ",") {
				if v1Controllers[opt] || strings.HasPrefix(opt, "name=") {
					if _, ok := l.V1[opt]; !ok {
						l.V1[opt] = mnt
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Layout{}, fmt.Errorf("read mountinfo: %w", err)
	}
	switch {
	case l.Unified == "/sys/fs/cgroup" || (l.Unified != "" && len(l.V1) == 0):
		l.Mode, l.V1 = ModeV2, nil
	case len(l.V1) > 0 && l.Unified != "":
		l.Mode = ModeHybrid
	case len(l.V1) > 0:
		l.Mode = ModeV1
	default:
		return Layout{}, errUnsupported("no cgroup hierarchy is mounted")
	}
	return l, nil
}

var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true, "devices": true,
	"freezer": true, "blkio": true, "pids": true, "hugetlb": true, "net_cls": true,
	"net_prio": true, "perf_event": true, "rdma": true, "misc": true,
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
