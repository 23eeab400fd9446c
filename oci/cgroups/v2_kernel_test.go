package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// The v2 manager against this host's real cgroup2 hierarchy: a pure-v2
// layout over /sys/fs/cgroup/unified (on the hybrid build machine only
// hugetlb is a controller there, but cgroup.procs, freeze, kill, events and
// eBPF device filters work on any cgroup2 directory). Every test makes its
// own randomly named tree and checks it is gone afterwards.

// v2Manager builds a pure-v2 Manager on a fresh path, destroyed (and
// checked) at the end.
func v2Mgr(t *testing.T, ctrls ...string) Manager {
	t.Helper()
	requireRoot(t)
	opts := unifiedV2(t)
	if len(ctrls) > 0 {
		opts = append(opts[:1], WithV2Controllers(ctrls...))
	}
	m, err := New(testPath(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	mustDestroy(t, m)
	return m
}

// The eBPF device filter decides each open and mknod the way v1's list
// would: the last matching rule wins, denied is EPERM.
func TestV2DeviceFilterEnforced(t *testing.T) {
	c := func(maj, min int64, acc string, allow bool) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: "c", Major: ptr(maj), Minor: ptr(min), Access: acc}
	}
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	allowAll := specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"}
	// Each probe prints NAME=ok or NAME=denied (with EPERM's message).
	const probes = `probe() { if ( eval "$2" ) 2>/tmp/err.$$; then echo "$1=ok"; elif grep -q 'not permitted' /tmp/err.$$; then echo "$1=denied"; else echo "$1=other: $(cat /tmp/err.$$)"; fi; }
probe read-null 'head -c1 /dev/null'
probe write-null 'echo x > /dev/null'
probe read-zero 'head -c1 /dev/zero >/dev/null'
probe write-zero 'echo x > /dev/zero'
probe mknod-char "mknod $D/c13 c 1 3"
probe mknod-other "mknod $D/c15 c 1 5"
probe mknod-block "mknod $D/b70 b 7 0"
rm -f /tmp/err.$$`
	tests := []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		want  []string
	}{
		{name: "deny all, allow /dev/null",
			rules: []specs.LinuxDeviceCgroup{denyAll, c(1, 3, "rwm", true)},
			want:  []string{"read-null=ok", "write-null=ok", "read-zero=denied", "write-zero=denied", "mknod-char=ok", "mknod-other=denied", "mknod-block=denied"}},
		{name: "deny all, /dev/zero read only",
			rules: []specs.LinuxDeviceCgroup{denyAll, c(1, 3, "rw", true), c(1, 5, "r", true)},
			want:  []string{"read-zero=ok", "write-zero=denied", "mknod-char=denied", "mknod-other=denied"}},
		{name: "deny all, every char device by wildcard",
			rules: []specs.LinuxDeviceCgroup{denyAll, {Allow: true, Type: "c", Major: ptr(int64(-1)), Minor: ptr(int64(-1)), Access: "rwm"}},
			want:  []string{"read-zero=ok", "write-zero=ok", "mknod-other=ok", "mknod-block=denied"}},
		{name: "allow all, deny writes to /dev/zero",
			rules: []specs.LinuxDeviceCgroup{allowAll, c(1, 5, "w", false)},
			want:  []string{"read-zero=ok", "write-zero=denied", "write-null=ok", "mknod-block=ok"}},
		{name: "later allow beats earlier deny",
			rules: []specs.LinuxDeviceCgroup{denyAll, c(1, 3, "rwm", true), c(1, 5, "rwm", false), c(1, 5, "r", true)},
			want:  []string{"read-zero=ok", "write-zero=denied", "write-null=ok"}},
		{name: "type a matches char devices",
			rules: []specs.LinuxDeviceCgroup{denyAll, {Allow: true, Type: "a", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}},
			want:  []string{"write-null=ok", "read-zero=denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := v2Mgr(t)
			dir := t.TempDir()
			ch := startChild(t, "D="+dir+"; "+probes)
			if err := m.Apply(ch.pid()); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&specs.LinuxResources{Devices: tt.rules}); err != nil {
				t.Fatal(err)
			}
			ch.go_()
			_ = ch.wait(t)
			out := ch.out.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("want %s; got:\n%s", w, out)
				}
			}
		})
	}
	t.Run("bad rule refused, the filter in place kept", func(t *testing.T) {
		m := v2Mgr(t)
		if err := m.Apply(0); err != nil {
			t.Fatal(err)
		}
		if err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll}}); err != nil {
			t.Fatal(err)
		}
		err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "x", Access: "rwm"}}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("bad device type: %v, want invalid argument", err)
		}
	})
}

// A hugetlb limit on pure v2 enables the controller down the tree the
// manager creates, is written (with its reservation twin), shows in the
// stats, and Destroy removes the directories it made.
func TestV2HugetlbLimit(t *testing.T) {
	requireRoot(t)
	l, _ := DetectLayout()
	if l.Unified == "" {
		t.Skip("no cgroup2 mount")
	}
	ctrls, _ := os.ReadFile(filepath.Join(l.Unified, "cgroup.controllers"))
	if !slices.Contains(strings.Fields(string(ctrls)), "hugetlb") {
		t.Skip("hugetlb is not a controller of the cgroup2 root")
	}
	sub, _ := os.ReadFile(filepath.Join(l.Unified, "cgroup.subtree_control"))
	if !slices.Contains(strings.Fields(string(sub)), "hugetlb") {
		t.Skip("hugetlb not enabled in the shared cgroup2 root (the test does not change the root)")
	}
	sizes := hugePageSizes()
	if len(sizes) == 0 {
		t.Skip("no huge page sizes")
	}
	m := v2Mgr(t, "hugetlb")
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	dir := m.Paths()[""]
	parentCtl := readBack(t, filepath.Dir(dir), "cgroup.subtree_control")
	if !strings.Contains(parentCtl, "hugetlb") {
		t.Fatalf("parent subtree_control %q lacks hugetlb", parentCtl)
	}
	for _, hs := range sizes {
		t.Run(hs.name, func(t *testing.T) {
			var n uint64
			var unit string
			fmt.Sscanf(hs.name, "%d%s", &n, &unit)
			page := n << map[string]uint{"KB": 10, "MB": 20, "GB": 30}[unit]
			limit := 3 * page
			if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: hs.name, Limit: limit}}}); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"hugetlb." + hs.name + ".max", "hugetlb." + hs.name + ".rsvd.max"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					continue
				}
				if got := readBack(t, dir, f); got != strconv.FormatUint(limit, 10) {
					t.Errorf("%s = %q, want %d", f, got, limit)
				}
			}
			st, err := m.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := st.Hugetlb[hs.name]; !ok {
				t.Errorf("stats hugetlb %v lacks %s", st.Hugetlb, hs.name)
			}
		})
	}
	if err := m.Set(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 1}}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown page size: %v, want invalid argument", err)
	}
}

// Limits for a controller the hierarchy does not have are a clear
// "not implemented", never a silent success or a bare ENOENT.
func TestV2MissingControllerIsClear(t *testing.T) {
	requireRoot(t)
	l, _ := DetectLayout()
	if l.Unified == "" {
		t.Skip("no cgroup2 mount")
	}
	ctrls, _ := os.ReadFile(filepath.Join(l.Unified, "cgroup.controllers"))
	have := strings.Fields(string(ctrls))
	tests := []struct {
		name, ctrl string
		res        specs.LinuxResources
	}{
		{"memory.max", "memory", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))}}},
		{"pids.max", "pids", specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(10))}}},
		{"cpu.weight", "cpu", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(512))}}},
		{"io.weight", "io", specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(500))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if slices.Contains(have, tt.ctrl) {
				t.Skipf("%s is a controller here", tt.ctrl)
			}
			m := v2Mgr(t)
			if err := m.Apply(0); err != nil {
				t.Fatal(err)
			}
			if err := m.Set(&tt.res); !errors.Is(err, errdefs.ErrNotImplemented) {
				t.Errorf("Set: %v, want not implemented", err)
			}
			// Asking for the controller up front fails the Apply, and
			// leaves nothing (testPath's check).
			m2, err := New(testPath(t), WithLayout(Layout{Mode: ModeV2, Unified: l.Unified}), WithV2Controllers(tt.ctrl))
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Apply(0); !errors.Is(err, errdefs.ErrNotImplemented) {
				t.Errorf("Apply with %s: %v, want not implemented", tt.ctrl, err)
			}
			_ = m2.Destroy()
		})
	}
}

// cgroup.events tells populated; Kill reaches processes in sub-cgroups a
// container made (cgroup namespace), for cgroup.kill and for the
// freeze-signal-thaw path; Destroy of a busy cgroup fails clearly and
// succeeds once it is empty.
func TestV2EventsSubtreeKillAndBusyDestroy(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			m := v2Mgr(t)
			top := startChild(t, "sleep 100")
			nested := startChild(t, "sleep 100")
			if err := m.Apply(top.pid()); err != nil {
				t.Fatal(err)
			}
			dir := m.Paths()[""]
			if got := eventsField(t, dir, "populated"); got != "1" {
				t.Errorf("populated %q with a process in", got)
			}
			sub := filepath.Join(dir, "sub")
			if err := os.Mkdir(sub, 0o755); err == nil {
				// v2's no-internal-process rule does not bind a cgroup
				// without controllers in its subtree_control.
				if err := os.WriteFile(filepath.Join(sub, "cgroup.procs"), []byte(strconv.Itoa(nested.pid())), 0); err != nil {
					t.Fatal(err)
				}
			} else {
				t.Fatal(err)
			}
			top.go_()
			nested.go_()
			pids, err := m.Pids()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(pids, nested.pid()) || !slices.Contains(pids, top.pid()) {
				t.Fatalf("Pids %v lacks %d or %d", pids, top.pid(), nested.pid())
			}
			if err := m.Destroy(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("Destroy with processes in: %v, want failed precondition", err)
			}
			if err := m.Kill(sig); err != nil {
				t.Fatal(err)
			}
			_ = top.wait(t)
			_ = nested.wait(t)
			waitEmpty(t, m)
			deadline := time.Now().Add(5 * time.Second)
			for eventsField(t, dir, "populated") != "0" {
				if time.Now().After(deadline) {
					t.Fatal("cgroup.events never showed populated 0")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got := eventsField(t, dir, "frozen"); got != "0" {
				t.Errorf("left frozen=%s after Kill", got)
			}
		})
	}
}

func eventsField(t *testing.T, dir, key string) string {
	t.Helper()
	for _, l := range strings.Split(readBack(t, dir, "cgroup.events"), "\n") {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			return v
		}
	}
	t.Fatalf("cgroup.events lacks %s", key)
	return ""
}
