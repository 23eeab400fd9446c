package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/config"
)

// serveArg makes the test binary a daemon (TestMain), so that a test can
// kill -9 a real one.
const serveArg = "crit-serve"

// serveMain runs the daemon from the JSON config at path until SIGTERM.
func serveMain(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg := config.Default()
	if err := json.Unmarshal(b, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// poolSets lists the pod dirs holding a free pooled set: pinned network
// namespace, no pod record. Only valid while no pod is being set up.
func (e *podEnv) poolSets() []string {
	var ids []string
	ents, _ := os.ReadDir(filepath.Join(e.cfg.State, "pods"))
	for _, d := range ents {
		dir := filepath.Join(e.cfg.State, "pods", d.Name())
		if _, err := os.Stat(filepath.Join(dir, "pod.json")); err == nil {
			continue
		}
		var st unix.Statfs_t
		if unix.Statfs(filepath.Join(dir, "netns"), &st) == nil && st.Type == unix.NSFS_MAGIC {
			ids = append(ids, d.Name())
		}
	}
	return ids
}

func (e *podEnv) waitPoolFull() []string {
	e.t.Helper()
	for range 1000 {
		if ids := e.poolSets(); len(ids) == e.cfg.CNI.NamespacePool {
			return ids
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("pool never filled: %d of %d sets", len(e.poolSets()), e.cfg.CNI.NamespacePool)
	return nil
}

// mountsUnder counts the mounts below dir.
func mountsUnder(dir string) int {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Count(string(mi), " "+dir+"/")
}

func netnsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPoolSetsRemovedOnStop(t *testing.T) {
	e := newPodEnv(t)
	e.start()
	e.waitPoolFull()
	e.stop()
	if n := mountsUnder(e.dir); n != 0 {
		t.Errorf("%d mounts left under the daemon's dirs after stop", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.cfg.State, "pods")); len(ents) != 0 {
		t.Errorf("%d pod dirs left after stop", len(ents))
	}
}

// A daemon killed with its pool full leaves the sets pinned; the next
// start removes every one of them before making its own.
func TestPoolSetsSweptAfterKill(t *testing.T) {
	e := newPodEnv(t)
	b, err := json.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(e.dir, "serve.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/proc/self/exe", serveArg, cfgPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { cmd.Process.Kill(); <-done }()
	waitServing(t, e.cfg.Listen, done)
	old := e.waitPoolFull()
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	done <- nil // for the deferred wait
	if got := e.poolSets(); len(got) != len(old) {
		t.Fatalf("after kill -9: %d pooled sets pinned, want all %d still there", len(got), len(old))
	}
	os.Remove(e.cfg.Listen)
	e.start()
	for _, id := range old {
		if _, err := os.Stat(filepath.Join(e.cfg.State, "pods", id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("killed daemon's pooled set %s still there: %v", id, err)
		}
	}
	e.waitPoolFull()
	// cleanup: stop, then checkLeaks (mounts, pod dirs).
}

// Pods take pooled sets, each a set nobody else has had: the ones taken
// leave the pool for good, and pods alive together never share one.
func TestPooledPodsGetTheirOwnNamespaces(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	free := e.waitPoolFull()
	var ids []string
	inodes := map[uint64]string{}
	for i := range 3 {
		free = append(free, e.waitPoolFull()...) // refilled since; full, so no set is being made meanwhile
		id := e.run(podConfig(fmt.Sprintf("pooled%d", i)))
		if !slices.Contains(free, id) {
			t.Fatalf("pod %s did not take a pooled set (pool %v)", id, free)
		}
		ino := netnsInode(t, filepath.Join(e.cfg.State, "pods", id, "netns"))
		if other, ok := inodes[ino]; ok {
			t.Fatalf("pods %s and %s share a network namespace", other, id)
		}
		inodes[ino] = id
		ids = append(ids, id)
	}
	for _, id := range ids {
		e.stopRemove(id)
	}
	// Removed pods' sets never come back to the pool.
	e.waitPoolFull()
	for _, id := range e.poolSets() {
		if slices.Contains(ids, id) {
			t.Errorf("removed pod's set %s is back in the pool", id)
		}
	}
	next := e.run(podConfig("after"))
	if slices.Contains(ids, next) {
		t.Errorf("new pod got removed pod %s's set", next)
	}
	e.stopRemove(next)
}

// A pod whose CNI ADD fails destroys the pooled set it took: it does not
// go back to the pool, and nothing of it stays pinned.
func TestFailedAddDestroysPooledSet(t *testing.T) {
	e := newPodEnv(t)
	e.failingAddConflist()
	e.start()
	before := e.waitPoolFull()
	_, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("doomed")})
	if err == nil {
		t.Fatal("RunPodSandbox with a failing plugin succeeded")
	}
	after := e.waitPoolFull()
	var gone []string
	for _, id := range before {
		if !slices.Contains(after, id) {
			gone = append(gone, id)
		}
	}
	if len(gone) != 1 {
		t.Fatalf("%d pooled sets left the pool for one failed pod, want 1", len(gone))
	}
	dir := filepath.Join(e.cfg.State, "pods", gone[0])
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed pod's pooled set %s still there: %v", gone[0], err)
	}
	if n := mountsUnder(dir); n != 0 {
		t.Errorf("failed pod's pooled set still has %d namespaces pinned", n)
	}
}

func TestPoolOff(t *testing.T) {
	e := newPodEnv(t)
	e.cfg.CNI.NamespacePool = 0
	e.conflist()
	e.start()
	id := e.run(podConfig("unpooled"))
	if sets := e.poolSets(); len(sets) != 0 {
		t.Errorf("namespace_pool = 0, yet %d pooled sets", len(sets))
	}
	st, _ := e.status(id)
	if !strings.HasPrefix(st.Network.Ip, e.subnet+".") {
		t.Errorf("pod without the pool: ip %q", st.Network.Ip)
	}
	e.stopRemove(id)
}

// A pod with a user namespace of its own needs its other namespaces owned
// by it: it makes its own and leaves the pool alone.
func TestUserNSPodSkipsPool(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	before := e.waitPoolFull()
	cfg := podConfig("userns")
	ids := []*runtime.IDMapping{{ContainerId: 0, HostId: 3000000 + uint32(os.Getpid()%1000)*65536, Length: 65536}}
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: ids, Gids: ids}}}
	id := e.run(cfg)
	if slices.Contains(before, id) {
		t.Errorf("user-namespaced pod took pooled set %s", id)
	}
	if after := e.poolSets(); !slices.Equal(after, before) {
		t.Errorf("pool changed under a user-namespaced pod: %d sets before, %d after", len(before), len(after))
	}
	e.stopRemove(id)
}
