package e2e

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// machine is what the e2e run may leave behind, seen at one moment.
// Other engineers' tests run on this machine at the same time, so a new
// object counts as ours only when it can be attributed: it lies under our
// temp dir, hangs off our bridge, or is named after a pod or container id
// our server logged.
type machine struct {
	mounts  map[string]bool // "mountpoint source fstype"
	netns   map[string]bool // /run/netns entries
	cgroups map[string]bool // cgroup dirs, all hierarchies
}

const cgroupDepth = 6

func snapshot(t *testing.T) machine {
	t.Helper()
	m := machine{mounts: map[string]bool{}, netns: map[string]bool{}, cgroups: map[string]bool{}}
	for _, mi := range readMountinfo(t) {
		m.mounts[mi.key()] = true
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			m.netns[e.Name()] = true
		}
	}
	for _, d := range cgroupDirs() {
		m.cgroups[d] = true
	}
	return m
}

type mountEntry struct{ point, source, fstype string }

func (m mountEntry) key() string { return m.point + " " + m.source + " " + m.fstype }

func readMountinfo(t *testing.T) []mountEntry {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatalf("open mountinfo: %v", err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 2 {
			continue
		}
		out = append(out, mountEntry{point: unescapeMount(a[4]), source: unescapeMount(b[1]), fstype: b[0]})
	}
	return out
}

var octalEscape = regexp.MustCompile(`\\[0-7]{3}`)

func unescapeMount(s string) string {
	return octalEscape.ReplaceAllStringFunc(s, func(e string) string {
		n, _ := strconv.ParseUint(e[1:], 8, 8)
		return string(rune(n))
	})
}

// cgroupDirs lists cgroup directories down to cgroupDepth in every mounted
// hierarchy (v1 controllers and the v2 unified one).
func cgroupDirs() []string {
	var dirs []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, root := range roots {
		if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
			continue
		}
		base := strings.Count(root, "/")
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.Count(p, "/")-base > cgroupDepth {
				return filepath.SkipDir
			}
			if p != root {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	return dirs
}

// owner tells whether a name or path belongs to this run.
type owner struct {
	dirs   []string        // our temp dirs
	ids    map[string]bool // pod and container ids from the server log
	bridge string
	net    string // CNI network name
}

var (
	hexID  = regexp.MustCompile(`\b[0-9a-f]{12,64}\b`)
	uuidID = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
)

// idsFromLog collects every id the server logged: its pods and containers
// (hex ids) and the pods' UIDs (critest's are UUIDs), however the server
// names its cgroups or netns after them.
func idsFromLog(path string) map[string]bool {
	ids := map[string]bool{}
	b, err := os.ReadFile(path)
	if err != nil {
		return ids
	}
	for _, id := range hexID.FindAllString(string(b), -1) {
		ids[id] = true
	}
	for _, id := range uuidID.FindAllString(string(b), -1) {
		ids[id] = true
	}
	return ids
}

func (o owner) ours(s string) bool {
	for _, d := range o.dirs {
		if strings.Contains(s, d) {
			return true
		}
	}
	for _, tok := range uuidID.FindAllString(s, -1) {
		if o.ids[tok] {
			return true
		}
	}
	for _, tok := range hexID.FindAllString(s, -1) {
		if o.ids[tok] {
			return true
		}
		for id := range o.ids { // a truncated id (e.g. 12 or 32 chars)
			if len(tok) >= 12 && strings.HasPrefix(id, tok) {
				return true
			}
		}
	}
	return false
}

// leftovers lists, one per line, what this run left on the machine, and
// removes what it safely can so that the next run starts clean.
func leftovers(t *testing.T, before machine, o owner, bin string) []string {
	t.Helper()
	var found []string

	for _, p := range ourProcesses(o, bin) {
		found = append(found, fmt.Sprintf("process %d (%s)", p.pid, p.cmd))
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}

	var leaked []mountEntry
	for _, mi := range readMountinfo(t) {
		if before.mounts[mi.key()] || !(o.ours(mi.point) || o.ours(mi.source)) {
			continue
		}
		found = append(found, fmt.Sprintf("mount %s (%s from %s)", mi.point, mi.fstype, mi.source))
		leaked = append(leaked, mi)
	}
	for i := len(leaked) - 1; i >= 0; i-- { // children first
		_ = syscall.Unmount(leaked[i].point, syscall.MNT_DETACH)
	}

	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if !before.netns[e.Name()] && o.ours(e.Name()) {
				found = append(found, "network namespace /run/netns/"+e.Name())
				_ = exec.Command("ip", "netns", "delete", e.Name()).Run()
			}
		}
	}

	for _, v := range vethsOn(o.bridge) {
		found = append(found, fmt.Sprintf("veth %s on bridge %s", v, o.bridge))
		_ = exec.Command("ip", "link", "delete", v).Run()
	}

	var cgs []string
	for _, d := range cgroupDirs() {
		if !before.cgroups[d] && o.ours(d) {
			cgs = append(cgs, d)
		}
	}
	for i := len(cgs) - 1; i >= 0; i-- { // WalkDir order: parents first
		found = append(found, "cgroup "+cgs[i])
		_ = os.Remove(cgs[i])
	}

	// libcni's result cache (unless the server moved it) names files after
	// the network: a file left there is a CNI ADD without its DEL.
	cached, _ := filepath.Glob("/var/lib/cni/results/" + o.net + "-*")
	for _, f := range cached {
		found = append(found, "CNI result cache "+f)
		_ = os.Remove(f)
	}

	if out, err := exec.Command("iptables-save").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, `"`+o.net+`"`) || strings.Contains(line, o.bridge) {
				found = append(found, "iptables rule "+line)
			}
		}
	}
	return found
}

type proc struct {
	pid int
	cmd string
}

// ourProcesses finds processes of this run: our binary (the daemon, its
// monitors; the test runs a private copy, so the path is ours alone) or anything whose root, cwd or command line is under our dirs
// (containers).
func ourProcesses(o owner, bin string) []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := "/proc/" + e.Name()
		exe, _ := os.Readlink(dir + "/exe")
		root, _ := os.Readlink(dir + "/root")
		cwd, _ := os.Readlink(dir + "/cwd")
		raw, _ := os.ReadFile(dir + "/cmdline")
		cmd := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		if (bin != "" && strings.TrimSuffix(exe, " (deleted)") == bin) ||
			o.ours(root) || o.ours(cwd) || underAny(cmd, o.dirs) {
			out = append(out, proc{pid, cmd})
		}
	}
	return out
}

func underAny(s string, dirs []string) bool {
	for _, d := range dirs {
		if strings.Contains(s, d) {
			return true
		}
	}
	return false
}

// vethsOn lists the interfaces enslaved to the bridge.
func vethsOn(bridge string) []string {
	ents, err := os.ReadDir("/sys/class/net/" + bridge + "/brif")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// deleteBridge removes the bridge the CNI bridge plugin created for us.
func deleteBridge(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat("/sys/class/net/" + name); err != nil {
		return
	}
	if out, err := exec.Command("ip", "link", "delete", name).CombinedOutput(); err != nil {
		t.Errorf("delete bridge %s: %v: %s", name, err, out)
	}
}
