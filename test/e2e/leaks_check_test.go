package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLeftovers plants one leftover of each kind the e2e test checks for and
// asserts that leftovers() reports and removes each, and reports nothing for
// objects it cannot attribute to the run. Root only (mounts, cgroups, links).
func TestLeftovers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	id := randHex(16)
	bridge := "crilk" + id[:8]
	o := owner{dirs: []string{dir}, ids: map[string]bool{id: true}, bridge: bridge, net: "cri-e2e-" + id[:8]}
	before := snapshot(t)

	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	// A mount under our dir.
	mnt := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	// A process running in our dir.
	sleeper := exec.Command("sleep", "300")
	sleeper.Dir = dir
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	go sleeper.Wait() //nolint:errcheck // reaped when leftovers() kills it
	// A cgroup named after one of our ids: in the v1 pids hierarchy on a
	// hybrid machine like this one, else at the v2 root.
	cgRoot := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(cgRoot); err != nil {
		cgRoot = "/sys/fs/cgroup"
	}
	cg := filepath.Join(cgRoot, "crilk-"+id)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	// A named netns named after our id, a veth on our bridge.
	ns := "crilk-" + id
	run("ip", "netns", "add", ns)
	run("ip", "link", "add", bridge, "type", "bridge")
	run("ip", "link", "add", "vlk"+id[:8], "type", "veth", "peer", "name", "vlp"+id[:8])
	run("ip", "link", "set", "vlk"+id[:8], "master", bridge)
	// Not ours: a cgroup with an unknown id must be neither reported nor removed.
	other := filepath.Join(cgRoot, "crilk-"+randHex(16))
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(other)
	defer deleteBridge(t, bridge)

	left := leftovers(t, before, o, "")
	all := strings.Join(left, "\n")
	tests := []struct{ name, want string }{
		{name: "process", want: "process "},
		{name: "mount", want: "mount " + mnt},
		{name: "netns", want: "network namespace /run/netns/" + ns},
		{name: "veth", want: "veth vlk" + id[:8] + " on bridge " + bridge},
		{name: "cgroup", want: "cgroup " + cg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(all, tt.want) {
				t.Errorf("leftovers lack %q:\n%s", tt.want, all)
			}
		})
	}
	if strings.Contains(all, other) {
		t.Errorf("reported a cgroup that is not ours: %s", other)
	}
	// And it cleaned them up: a second look finds nothing.
	if again := leftovers(t, before, o, ""); len(again) != 0 {
		t.Errorf("still there after clean-up:\n%s", strings.Join(again, "\n"))
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("removed a cgroup that is not ours: %v", err)
	}
}
