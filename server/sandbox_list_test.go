package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/sandbox"
	"github.com/cri-server/cri-server/store"
)

func TestListAndStreamPodSandboxFilters(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	a, b := podConfig("list-a"), podConfig("list-b")
	a.Labels["tier"], b.Labels["tier"] = "front", "front"
	idA, idB := e.run(a), e.run(b)
	if _, err := e.rt.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: idB}); err != nil {
		t.Fatal(err)
	}
	ready := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}
	notReady := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}
	tests := []struct {
		name   string
		filter *runtime.PodSandboxFilter
		want   []string
	}{
		{"no filter", nil, []string{idA, idB}},
		{"full id", &runtime.PodSandboxFilter{Id: idB}, []string{idB}},
		{"id prefix", &runtime.PodSandboxFilter{Id: idA[:13]}, []string{idA}},
		{"state ready", &runtime.PodSandboxFilter{State: ready}, []string{idA}},
		{"state not ready", &runtime.PodSandboxFilter{State: notReady}, []string{idB}},
		{"label", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "list-a"}}, []string{idA}},
		{"labels all must match", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"tier": "front", "app": "list-b"}}, []string{idB}},
		{"label and state disagree", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "list-a"}, State: notReady}, nil},
		{"unknown id", &runtime.PodSandboxFilter{Id: "ffffffff"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := e.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range l.Items {
				got = append(got, p.Id)
			}
			if !sameSet(got, tc.want) {
				t.Fatalf("List: got %v, want %v", got, tc.want)
			}
			stream, err := e.rt.StreamPodSandboxes(context.Background(), &runtime.StreamPodSandboxesRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			var streamed []string
			for {
				r, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range r.PodSandboxes {
					streamed = append(streamed, p.Id)
				}
			}
			if !sameSet(streamed, tc.want) {
				t.Fatalf("Stream: got %v, want %v", streamed, tc.want)
			}
		})
	}
	e.stopRemove(idA)
	e.stopRemove(idB)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestSharedPIDNamespaceInit(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	parent := "/crit-" + randHex(4)
	cfg := podConfig("sharedpid")
	cfg.Linux.CgroupParent = parent + "/pod1"
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	id := e.run(cfg)
	_, info := e.status(id)
	pid := int(info["pid"].(float64))
	if pid == 0 || info["pidns"] == "" {
		t.Fatalf("no pod init: %v", info)
	}
	// The init is PID 1 of its namespace, in the pod's netns and cgroup.
	ns, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil || !strings.Contains(string(ns), "NSpid:\t"+strconv.Itoa(pid)+"\t1\n") {
		t.Fatalf("init status: %v\n%s", err, ns)
	}
	netLink, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net"))
	if got := must(nsenter(t, []string{"--net=" + info["netns"].(string)}, "readlink", "/proc/self/ns/net")); got != netLink {
		t.Errorf("init netns %s, pod netns %s", netLink, got)
	}
	procs, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", parent, "pod1", "cgroup.procs"))
	if strings.TrimSpace(string(procs)) != strconv.Itoa(pid) {
		t.Errorf("pod cgroup holds %q, want the init %d", procs, pid)
	}
	// An orphan in the namespace is reaped by the init, not left a zombie.
	out, err := nsenter(t, []string{"--pid=" + info["pidns"].(string)}, "busybox", "sh", "-c", "busybox sleep 1 >/dev/null 2>&1 & echo $!")
	if err != nil {
		t.Fatalf("start an orphan in the pod: %v %s", err, out)
	}
	time.Sleep(100 * time.Millisecond)
	// Orphans attach to one of the init's threads; gather them all.
	var children []byte
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		children = append(children, b...)
	}
	if len(strings.Fields(string(children))) != 1 {
		t.Fatalf("orphan not adopted by the pod init: children %q", children)
	}
	orphan, _ := strconv.Atoi(strings.Fields(string(children))[0])
	waitGone(t, orphan)
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(orphan))); err == nil {
		t.Fatalf("orphan %d left a zombie: the init does not reap", orphan)
	}
	if _, err := e.rt.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	e.stopRemove(id)
	for _, c := range []string{"memory", "cpu", "pids"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", c, parent)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s%s left: %v", c, parent, err)
		}
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pod init %d still running after stop", pid)
}

func TestHalfSetUpPodCleanedOnStart(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	id := e.run(podConfig("half"))
	e.stop()
	// Make the record look as if the daemon died during ADD.
	db, err := store.Open(filepath.Join(e.cfg.Root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	var p sandbox.Pod
	if err := db.Get(store.BucketPods, id, &p); err != nil {
		t.Fatal(err)
	}
	p.State = sandbox.StateCreating
	db.Put(store.BucketPods, id, &p)
	db.Close()
	e.start()
	l, _ := e.rt.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{})
	if len(l.GetItems()) != 0 {
		t.Fatalf("half-set-up pod still listed: %v", l.Items)
	}
	// A new pod of the same name must be possible at once.
	e.stopRemove(e.run(podConfig("half")))
	// checkLeaks: its netns pin, veth and IP are gone.
}

func TestAddTimeoutLeavesNothing(t *testing.T) {
	e := newPodEnv(t)
	hang := "#!/bin/sh\ncase \"$CNI_COMMAND\" in\nADD) exec sleep 30;;\nesac\nexit 0\n"
	if err := os.WriteFile(filepath.Join(e.binDir, "crit-hang"), []byte(hang), 0o755); err != nil {
		t.Fatal(err)
	}
	e.conflist(`{"type":"crit-hang"}`)
	e.start()
	old := sandbox.AddTimeout
	sandbox.AddTimeout = 300 * time.Millisecond
	defer func() { sandbox.AddTimeout = old }()
	_, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("slow")})
	if err == nil {
		t.Fatal("RunPodSandbox with a hanging plugin succeeded")
	}
}

func TestDualStackPodIPs(t *testing.T) {
	e := newPodEnv(t)
	e.dualStackConflist()
	e.start()
	id := e.run(podConfig("dual"))
	st, _ := e.status(id)
	if !strings.HasPrefix(st.Network.Ip, e.subnet+".") || len(st.Network.AdditionalIps) != 1 ||
		!strings.HasPrefix(st.Network.AdditionalIps[0].Ip, "fd") {
		t.Fatalf("dual stack: ip %q additional %v, want IPv4 first then one IPv6", st.Network.Ip, st.Network.AdditionalIps)
	}
	hosts, _ := os.ReadFile(filepath.Join(e.cfg.State, "pods", id, "hosts"))
	if !strings.Contains(string(hosts), st.Network.AdditionalIps[0].Ip+"\tdual") {
		t.Errorf("hosts lacks the IPv6 address:\n%s", hosts)
	}
	e.stopRemove(id)
}

func TestConcurrentPods(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	const n = 8
	ids := make(chan string, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			r, err := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("conc" + strconv.Itoa(i))})
			if err != nil {
				errs <- err
				return
			}
			ids <- r.PodSandboxId
		}()
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			t.Errorf("concurrent RunPodSandbox: %v", err)
		case id := <-ids:
			st, _ := e.status(id)
			if seen[st.Network.Ip] {
				t.Errorf("IP %s given twice", st.Network.Ip)
			}
			seen[st.Network.Ip] = true
			defer e.stopRemove(id)
		}
	}
	// Same name twice at once: exactly one wins, the other is told who holds it.
	cfg := podConfig("same")
	_, err1 := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg})
	_, err2 := e.rt.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg})
	if err1 != nil || err2 == nil || !strings.Contains(err2.Error(), "reserved") {
		t.Fatalf("same pod twice: %v / %v", err1, err2)
	}
}

func TestOrphanPodDirSweptOnStart(t *testing.T) {
	e := newPodEnv(t)
	e.start()
	cfg := podConfig("orphan-dir")
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
		Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_POD}}
	id := e.run(cfg)
	_, info := e.status(id)
	pid := int(info["pid"].(float64))
	e.stop()
	// As if the daemon died before the pod's record was written: the dir,
	// its pinned ipc ns, shm mount and init exist; no record does.
	forgetRecord(t, e, id)
	e.start()
	waitGone(t, pid)
	if _, err := os.Stat(filepath.Join(e.cfg.State, "pods", id)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan pod dir not swept: %v", err)
	}
	// checkLeaks: no mounts (ipc pin, shm) left under the test dir.
}

// A daemon killed after CNI ADD but before the pod's record was stored
// leaves a pod dir with the journaled attachment: the next start runs DEL
// from it, releasing the veth, the IP and the masquerade rules.
func TestDeathBetweenAddAndRecordReleasesNetwork(t *testing.T) {
	e := newPodEnv(t)
	e.masq = true
	e.conflist()
	e.start()
	id := e.run(podConfig("unrecorded"))
	e.stop()
	forgetRecord(t, e, id)
	if ips := e.heldIPs(); len(ips) != 1 {
		t.Fatalf("before restart host-local holds %v, want the pod's one IP", ips)
	}
	e.start()
	if ips := e.heldIPs(); len(ips) != 0 {
		t.Errorf("after restart host-local still holds %v", ips)
	}
	if ents, _ := os.ReadDir(filepath.Join("/sys/class/net", e.bridge, "brif")); len(ents) != 0 {
		t.Errorf("after restart %d veths on the bridge", len(ents))
	}
	if _, err := os.Stat(filepath.Join(e.cfg.State, "pods", id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir not swept: %v", err)
	}
	// checkLeaks: no masquerade rule for the subnet, no netns pin.
}

// A reboot during a pod's CNI ADD empties the state tmpfs (the pod dir and
// its copy of the attachment) while host-local keeps the IP it allocated
// on disk, and libcni never cached a result: the network journal on the
// root disk still has the attachment, and the next start's DEL frees the
// IP. A ready pod's entry goes with its store commit.
func TestRebootDuringSetupReleasesNetwork(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	kept := e.run(podConfig("kept"))
	id := e.run(podConfig("lost"))
	e.stop()
	journal := filepath.Join(e.cfg.Root, "pods-net")
	if ents, err := sandbox.ReadNetJournal(journal); err != nil || len(ents) != 0 {
		t.Errorf("network journal after the pods' store commits: %d entries (%v), want none", len(ents), err)
	}
	// The daemon died before "lost"'s commit: no record, the journal entry
	// still there (as ADD left it: a copy of the pod dir's), here in the
	// older versions' one-file-per-pod form, which must still be swept.
	forgetRecord(t, e, id)
	a, err := os.ReadFile(filepath.Join(e.cfg.State, "pods", id, "net.json"))
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, os.WriteFile(filepath.Join(journal, id+".json"), a, 0o600))
	// The reboot came during ADD: host-local had allocated, libcni had not
	// cached the result yet (its cache on the root disk covers a reboot
	// after ADD). Then the pod's namespaces and tmpfs dir are gone.
	cached, _ := filepath.Glob(filepath.Join(e.cfg.Root, "cni-cache", "results", "*"+id+"*"))
	if len(cached) == 0 {
		t.Fatalf("no libcni cache entry for the pod")
	}
	for _, f := range cached {
		mustDo(t, os.Remove(f))
	}
	rebootLoses(t, filepath.Join(e.cfg.State, "pods", id))
	// The kernel frees a netns (and so the veth's host end) a moment after
	// its last reference goes.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ents, _ := os.ReadDir(filepath.Join("/sys/class/net", e.bridge, "brif")); len(ents) == 1 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the lost pod's netns outlived its pins: %d veths on the bridge", len(ents))
		}
	}
	if ips := e.heldIPs(); len(ips) != 2 {
		t.Fatalf("before restart host-local holds %v, want both pods' IPs", ips)
	}
	e.start()
	if ips := e.heldIPs(); len(ips) != 1 {
		t.Errorf("after restart host-local holds %v, want only the kept pod's IP", ips)
	}
	if ents, _ := os.ReadDir(journal); len(ents) != 0 {
		t.Errorf("network journal dir after restart: %d files, want none", len(ents))
	}
	e.stopRemove(kept)
}

// rebootLoses makes a pod dir vanish as a reboot would: its init killed,
// its pins and mounts detached (the namespaces go with their last
// reference), the dir removed.
func rebootLoses(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "init.pid")); err == nil {
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
			// The server's reaper has gone with its daemon: this test process
			// is the init's parent.
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			if err := unix.Unmount(f[4], unix.MNT_DETACH); err != nil {
				t.Fatalf("unmount %s: %v", f[4], err)
			}
		}
	}
	mustDo(t, os.RemoveAll(dir))
}

// forgetRecord makes a stopped daemon's pod look as if the daemon had died
// before writing its record: none in the store, none in the pod dir.
func forgetRecord(t *testing.T, e *podEnv, id string) {
	t.Helper()
	db, err := store.Open(filepath.Join(e.cfg.Root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Delete(store.BucketPods, id)
	db.Close()
	os.Remove(filepath.Join(e.cfg.State, "pods", id, "pod.json"))
}

// A daemon killed after RunPodSandbox returned but before the pod's
// store commit was durable still knows the pod on its next start (from
// the record in the pod dir), ready, with its IP, and can stop it.
func TestReadyPodWithoutStoreCommitAdoptedOnStart(t *testing.T) {
	e := newPodEnv(t)
	e.masq = true
	e.conflist()
	e.start()
	id := e.run(podConfig("adopted"))
	before, _ := e.status(id)
	e.stop()
	db, err := store.Open(filepath.Join(e.cfg.Root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Delete(store.BucketPods, id)
	db.Close()
	e.start()
	after, _ := e.status(id)
	if after.State != runtime.PodSandboxState_SANDBOX_READY || after.Network.Ip != before.Network.Ip {
		t.Fatalf("after restart: state %v ip %q, want ready with %q", after.State, after.Network.Ip, before.Network.Ip)
	}
	if ips := e.heldIPs(); len(ips) != 1 {
		t.Errorf("host-local holds %v, want the adopted pod's IP only", ips)
	}
	e.stopRemove(id)
	// checkLeaks: stop and remove released all of it.
}

func TestCheckNetworkFindsABrokenPod(t *testing.T) {
	e := newPodEnv(t)
	e.conflist()
	e.start()
	id := e.run(podConfig("checked"))
	_, info := e.status(id)
	// CHECK has no RPC: drive the daemon's own Server, built on the same
	// dirs while the serving one is stopped.
	e.stop()
	srv, err := New(context.Background(), e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.pods.CheckNetwork(context.Background(), id); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v", err)
	}
	if out, err := nsenter(t, []string{"--net=" + info["netns"].(string)}, "ip", "link", "del", "eth0"); err != nil {
		t.Fatalf("break the pod: %v %s", err, out)
	}
	if err := srv.pods.CheckNetwork(context.Background(), id); err == nil {
		t.Fatal("CHECK passed with eth0 gone")
	}
	srv.Close()
	e.start()
	e.stopRemove(id) // DEL of a half-gone network still succeeds
}
