package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

func TestParseSysctls(t *testing.T) {
	tests := []struct {
		name           string
		in             map[string]string
		ownNet, ownIPC bool
		wantPath       string
		wantErr        string
	}{
		{"net in own netns", map[string]string{"net.ipv4.ip_forward": "1"}, true, true, "net/ipv4/ip_forward", ""},
		{"slash form", map[string]string{"net/ipv4/conf/all/rp_filter": "1"}, true, true, "net/ipv4/conf/all/rp_filter", ""},
		{"ipc in own ipc ns", map[string]string{"kernel.shmmax": "1"}, true, true, "kernel/shmmax", ""},
		{"mqueue", map[string]string{"fs.mqueue.msg_max": "20"}, true, true, "fs/mqueue/msg_max", ""},
		{"net on host network", map[string]string{"net.ipv4.ip_forward": "1"}, false, true, "", "host network"},
		{"ipc on host ipc", map[string]string{"kernel.msgmax": "1"}, true, false, "", "host IPC"},
		{"node-level", map[string]string{"kernel.panic": "1"}, true, true, "", "not namespaced"},
		{"vm is node-level", map[string]string{"vm.swappiness": "1"}, true, true, "", "not namespaced"},
		{"dotdot", map[string]string{"net/../kernel/panic": "1"}, true, true, "", "malformed"},
		{"empty part", map[string]string{"net..ipv4": "1"}, true, true, "", "malformed"},
		{"newline value", map[string]string{"net.ipv4.ip_forward": "1\n0"}, true, true, "", "malformed value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSysctls(tc.in, tc.ownNet, tc.ownIPC)
			if tc.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want InvalidArgument %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != 1 || got[0].path != tc.wantPath {
				t.Fatalf("got %+v, %v; want path %s", got, err, tc.wantPath)
			}
		})
	}
}

func TestValidCgroupParent(t *testing.T) {
	tests := []struct {
		name, parent string
		ok           bool
	}{
		{"empty", "", true},
		{"kubepods", "/kubepods/besteffort/pod123", true},
		{"escape", "/kubepods/../../x", false},
		{"systemd", "kubepods-besteffort.slice", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := validCgroupParent(tc.parent); (err == nil) != tc.ok {
				t.Fatalf("validCgroupParent(%q) = %v", tc.parent, err)
			}
		})
	}
}

func TestResolvFile(t *testing.T) {
	tests := []struct {
		name string
		dns  *runtime.DNSConfig
		want string
	}{
		{"full", &runtime.DNSConfig{Servers: []string{"1.1.1.1", "8.8.8.8"}, Searches: []string{"a.svc", "svc"}, Options: []string{"ndots:5"}},
			"nameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch a.svc svc\noptions ndots:5\n"},
		{"servers only", &runtime.DNSConfig{Servers: []string{"1.1.1.1"}}, "nameserver 1.1.1.1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolvFile(tc.dns)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	if got, _ := resolvFile(nil); string(got) != string(host) {
		t.Errorf("no dns_config: got %q, want the host's", got)
	}
}

func TestHostsFileNamesEveryIP(t *testing.T) {
	h := string(hostsFile("web", []string{"10.0.0.5", "fd00::5"}))
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "10.0.0.5\tweb\n", "fd00::5\tweb\n"} {
		if !strings.Contains(h, want) {
			t.Errorf("hosts lacks %q:\n%s", want, h)
		}
	}
}

func TestCreateCgroupRemovesOnlyWhatItMade(t *testing.T) {
	root := t.TempDir() // a fake hierarchy: mkdir/rmdir behave the same
	for _, c := range podCgroupControllers {
		os.MkdirAll(filepath.Join(root, c, "kubepods"), 0o755)
	}
	journal, err := os.Create(filepath.Join(t.TempDir(), cgroupJournal))
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	made, err := createCgroup(root, "/kubepods/pod1/inner", journal)
	if err != nil {
		t.Fatal(err)
	}
	// What a sweep after a crash reads back is what was made.
	if got := readCgroupJournal(filepath.Dir(journal.Name())); strings.Join(got, " ") != strings.Join(made, " ") {
		t.Errorf("journal %v, made %v", got, made)
	}
	if len(made) != 2*len(podCgroupControllers) {
		t.Fatalf("made %v", made)
	}
	if err := removeCgroups(made); err != nil {
		t.Fatal(err)
	}
	for _, c := range podCgroupControllers {
		if _, err := os.Stat(filepath.Join(root, c, "kubepods")); err != nil {
			t.Errorf("removed the kubelet's %s/kubepods: %v", c, err)
		}
		if _, err := os.Stat(filepath.Join(root, c, "kubepods", "pod1")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("left %s/kubepods/pod1", c)
		}
	}
}

func TestPinAndUnpinNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare and bind mounts")
	}
	dir := t.TempDir()
	res, err := createNamespaces(nsRequest{dir: dir, net: true, ipc: true, uts: true, hostname: "pinned"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{res.net, res.ipc, res.uts} {
		if !isMountpoint(p) {
			t.Errorf("%s is not a pinned namespace", p)
		}
		if err := unpin(p); err != nil {
			t.Error(err)
		}
		if err := unpin(p); err != nil { // again: idempotent
			t.Errorf("second unpin: %v", err)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left under %s", dir)
	}
}

func TestCreateNamespacesUndoesOnError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare and bind mounts")
	}
	tests := []struct {
		name    string
		req     func(dir string) nsRequest
		prepare func(dir string)
	}{
		{"sysctl refused before pinning", func(dir string) nsRequest {
			return nsRequest{dir: dir, net: true, ipc: true, uts: true, hostname: "x",
				sysctls: []sysctl{{key: "net.nonexistent", path: "net/nonexistent", value: "1"}}}
		}, func(string) {}},
		// net and ipc are pinned when uts fails: both must be undone.
		{"third pin fails", func(dir string) nsRequest {
			return nsRequest{dir: dir, net: true, ipc: true, uts: true, hostname: "x"}
		}, func(dir string) { os.WriteFile(filepath.Join(dir, "utsns"), nil, 0o600) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.prepare(dir)
			before, _ := os.ReadDir(dir)
			if _, err := createNamespaces(tc.req(dir)); err == nil {
				t.Fatal("createNamespaces succeeded")
			}
			ents, _ := os.ReadDir(dir)
			mi, _ := os.ReadFile("/proc/self/mountinfo")
			if len(ents) != len(before) || strings.Contains(string(mi), dir) {
				t.Fatalf("left %d files / mounts under %s", len(ents)-len(before), dir)
			}
		})
	}
}

func TestDeviceSysctlsWaitForCNI(t *testing.T) {
	tests := []struct {
		name string
		key  string
		late bool
	}{
		{"device conf", "net.ipv4.conf.eth0.rp_filter", true},
		{"device neigh", "net.ipv6.neigh.eth0.retrans_time_ms", true},
		{"slash form", "net/ipv4/conf/eth0.100/forwarding", true},
		{"all", "net.ipv4.conf.all.rp_filter", false},
		{"default", "net.ipv6.conf.default.disable_ipv6", false},
		{"lo exists from the start", "net.ipv4.conf.lo.accept_local", false},
		{"not per device", "net.ipv4.ip_local_port_range", false},
		{"ipc", "kernel.shmmax", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, err := parseSysctls(map[string]string{tc.key: "1"}, true, true)
			if err != nil {
				t.Fatal(err)
			}
			early, late := splitSysctls(in)
			if got := len(late) == 1; got != tc.late || len(early)+len(late) != 1 {
				t.Fatalf("%s: early %v late %v, want late=%v", tc.key, early, late, tc.late)
			}
		})
	}
}

// The threads that made or joined a pod's namespaces go back to the
// daemon's: none of the process's threads is left in a pod's namespace
// (it would hold that pod's netns, and its veth, after the pod is gone).
func TestNamespaceThreadsComeBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare and bind mounts")
	}
	host, _ := os.Hostname()
	for i := range 20 {
		dir := t.TempDir()
		res, err := createNamespaces(nsRequest{dir: dir, net: true, ipc: true, uts: true, hostname: "made"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := joinNamespaces(nsRequest{dir: dir, net: true, ipc: true, uts: true, hostname: "joined"}); err != nil {
			t.Fatal(err)
		}
		// A failure after the namespaces were entered comes back too.
		if _, err := joinNamespaces(nsRequest{dir: dir, hostname: "x",
			sysctls: []sysctl{{key: "net.nonexistent", path: "net/nonexistent", value: "1"}}}); err == nil {
			t.Fatal("a refused sysctl was accepted")
		}
		unpinAll(res)
		if h, _ := os.Hostname(); h != host {
			t.Fatalf("round %d: hostname %q after the pods' namespaces, want the host's %q", i, h, host)
		}
	}
	for _, ns := range []string{"net", "ipc", "uts"} {
		want, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		tasks, _ := filepath.Glob("/proc/self/task/*/ns/" + ns)
		for _, task := range tasks {
			if got, err := os.Readlink(task); err == nil && got != want {
				t.Errorf("%s is %s, want the process's %s", task, got, want)
			}
		}
	}
}
