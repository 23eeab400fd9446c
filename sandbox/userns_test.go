package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/spec"
	"github.com/cri-server/cri-server/sandbox"
)

// usernsPodConfig is a hostUsers: false pod as the kubelet sends it.
func usernsPodConfig(base uint32, pid runtime.NamespaceMode) *runtime.PodSandboxConfig {
	m := []*runtime.IDMapping{{ContainerId: 0, HostId: base, Length: 65536}}
	return &runtime.PodSandboxConfig{Hostname: "userns-pod", Linux: &runtime.LinuxPodSandboxConfig{
		SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
			Pid: pid, UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}}}}}
}

// idmappedRootfs mounts an overlay of the test's busybox rootfs for one
// container and idmaps it through the pod's user namespace, as
// CreateContainer does with an image.
func (e *viewEnv) idmappedRootfs(p *sandbox.Pod, base uint32, id string) string {
	e.t.Helper()
	d := filepath.Join(e.dir, "ctr-"+id)
	upper, work, merged := filepath.Join(d, "upper"), filepath.Join(d, "work"), filepath.Join(d, "merged")
	for _, x := range []string{upper, work, merged} {
		must(e.t, os.MkdirAll(x, 0o755))
	}
	must(e.t, unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+e.rootfs+",upperdir="+upper+",workdir="+work))
	e.t.Cleanup(func() {
		for unix.Unmount(merged, unix.MNT_DETACH) == nil {
		}
	})
	must(e.t, oci.IdmapOverlay(merged, p.UserNS, int(base), int(base)))
	return merged
}

// runIn runs sh -c script in a container of the userns pod p.
func (e *viewEnv) runIn(p *sandbox.Pod, cfg *runtime.PodSandboxConfig, base uint32, script string) string {
	e.t.Helper()
	id := "u" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cc := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: id}, Command: []string{"sh", "-c", script}}
	sp, err := spec.Generate(spec.Input{
		ID: id, Config: cc, Sandbox: cfg, SandboxID: p.ID, Rootfs: e.idmappedRootfs(p, base, id),
		NetNS: p.NetNS, IPCNS: p.IPCNS, UTSNS: p.UTSNS, PIDNS: p.PIDNS, UserNS: p.UserNS,
		HostnamePath: p.HostnamePath, HostsPath: p.HostsPath, ResolvPath: p.ResolvPath, ShmPath: p.ShmPath,
		CgroupParent: p.CgroupParent,
	})
	must(e.t, err)
	r, w, err := os.Pipe()
	must(e.t, err)
	defer r.Close()
	ctx := context.Background()
	c, err := e.rt.Create(ctx, id, sp, oci.IO{Stdout: w, Stderr: w})
	w.Close()
	must(e.t, err)
	defer e.rt.Delete(ctx, id, true)
	must(e.t, e.rt.Start(ctx, id))
	out, _ := io.ReadAll(r)
	st, err := c.Wait()
	must(e.t, err)
	if st.ExitCode() != 0 {
		e.t.Fatalf("container exited %d: %s", st.ExitCode(), out)
	}
	return string(out)
}

func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Stat(path, &st))
	return st.Ino
}

// ownerIno is the inode of the user namespace that owns the namespace at
// path (NS_GET_USERNS).
func ownerIno(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	must(t, err)
	defer unix.Close(fd)
	var st unix.Stat_t
	must(t, unix.Fstat(fd, &st))
	return st.Ino
}

func TestUserNSPod(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  runtime.NamespaceMode
	}{
		{name: "pid per container", pid: runtime.NamespaceMode_CONTAINER},
		{name: "shared pid", pid: runtime.NamespaceMode_POD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newViewEnv(t)
			for _, a := range []string{"stat", "readlink"} {
				must(t, os.Symlink("busybox", filepath.Join(e.rootfs, "bin", a)))
			}
			base := uint32(2_000_000 + (os.Getpid()%500)*131072)
			if tc.pid == runtime.NamespaceMode_POD {
				base += 65536
			}
			cfg := usernsPodConfig(base, tc.pid)
			p := e.runPod(cfg)
			if p.UserNS == "" {
				t.Fatal("pod has no user namespace")
			}
			user := nsIno(t, p.UserNS)
			pinned := []string{p.NetNS, p.IPCNS, p.UTSNS}
			if tc.pid == runtime.NamespaceMode_POD {
				pinned = append(pinned, p.PIDNS)
			}
			for _, ns := range pinned {
				if ns == "" {
					t.Fatalf("pod lacks a namespace: %+v", p)
				}
				if got := ownerIno(t, ns); got != user {
					t.Errorf("%s is owned by user namespace %d, want the pod's %d", filepath.Base(ns), got, user)
				}
			}
			for _, f := range []string{p.HostnamePath, p.HostsPath, p.ResolvPath, p.ShmPath} {
				var st unix.Stat_t
				must(t, unix.Stat(f, &st))
				if st.Uid != base || st.Gid != base {
					t.Errorf("%s is %d:%d, want the pod's root %d", f, st.Uid, st.Gid, base)
				}
			}
			script := strings.Join([]string{
				"cat /proc/self/uid_map", "readlink /proc/self/ns/user", "hostname",
				"stat -c 'files %u' /etc/hostname /etc/hosts /etc/resolv.conf /dev/shm",
				"echo x > /dev/shm/y && echo SHM-OK", "echo 1.2.3.4 extra >> /etc/hosts && echo HOSTS-OK",
				"cat /proc/1/cmdline; echo",
			}, "; ")
			out := e.runIn(p, cfg, base, script)
			for _, want := range []string{
				fmt.Sprintf("0 %d 65536", base), fmt.Sprintf("user:[%d]", user), "userns-pod", "SHM-OK", "HOSTS-OK",
			} {
				if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Count(out, "files 0") != 4 {
				t.Errorf("the pod's files are not its root's inside:\n%s", out)
			}
			if tc.pid == runtime.NamespaceMode_POD && !strings.Contains(out, "pod-init") {
				t.Errorf("shared PID namespace without the pod init as PID 1:\n%s", out)
			}
		})
	}
}

// A mapping the kernel refuses (two ranges overlapping on the host) fails
// the pod's setup with nothing left behind (checkLeaks: mounts, pod dir,
// processes, cgroups).
func TestUserNSPodRefusedMappingUndone(t *testing.T) {
	e := newViewEnv(t)
	cfg := usernsPodConfig(3_000_000, runtime.NamespaceMode_POD)
	u := cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions
	u.Uids = append(u.Uids, &runtime.IDMapping{ContainerId: 65536, HostId: 3_000_000, Length: 10})
	cfg.Metadata = &runtime.PodSandboxMetadata{Name: "bad", Namespace: "ns", Uid: strconv.FormatInt(time.Now().UnixNano(), 36)}
	cfg.Linux.CgroupParent = e.cg + "/" + cfg.Metadata.Uid
	if p, err := e.pods.Run(context.Background(), cfg, ""); err == nil {
		e.pods.Stop(context.Background(), p.ID)
		e.pods.Remove(context.Background(), p.ID)
		t.Fatal("pod with an overlapping mapping set up")
	}
}
