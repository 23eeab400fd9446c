package oci_test

import (
	"context"
	"io"
	"strconv"
	"time"

	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
)

// podUserNS makes a user namespace with a network namespace it owns, as
// sandbox/ does for a pod with hostUsers: false, held by a sleeping
// process; it returns the ns paths. The holder is killed at cleanup.
func podUserNS(t *testing.T, base uint32) (user, net string) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: m, GidMappings: m, GidMappingsEnableSetgroups: true}
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := fmt.Sprintf("/proc/%d/ns/", cmd.Process.Pid)
	return p + "user", p + "net"
}

// usernsBase picks a host id range no real user has, per test process.
func usernsBase() uint32 { return uint32(1_000_000 + (os.Getpid()%1000)*65536) }

func idMap(base uint32) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: base, Size: 65536}}
}

// usernsSpec is baseSpec joining the pod's user and network namespaces and
// making the others, as a CRI container of a hostUsers: false pod.
func usernsSpec(t *testing.T, root string, base uint32, args ...string) *specs.Spec {
	user, net := podUserNS(t, base)
	s := baseSpec(root, args...)
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: "user", Path: user}, {Type: "network", Path: net},
		{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "cgroup"}}
	s.Linux.UIDMappings, s.Linux.GIDMappings = idMap(base), idMap(base)
	return s
}

func TestUserNSJoinedByPath(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	base := usernsBase()
	chownTree(t, root, int(base)) // as if idmapped: the rootfs is the container root's
	vol := filepath.Join(e.dir, "vol")
	must(t, os.Mkdir(vol, 0o755))
	must(t, os.Chown(vol, int(base), int(base)))
	mine := filepath.Join(vol, "mapped-owner")
	must(t, os.WriteFile(mine, []byte("x"), 0o600))
	must(t, os.Chown(mine, int(base)+7, int(base)+7))
	hostRoot := filepath.Join(vol, "host-root")
	must(t, os.WriteFile(hostRoot, []byte("root"), 0o644))
	idVol := filepath.Join(e.dir, "idvol")
	must(t, os.Mkdir(idVol, 0o755))
	must(t, os.WriteFile(filepath.Join(idVol, "f"), []byte("x"), 0o644))

	script := strings.Join([]string{
		"cat /proc/self/uid_map /proc/self/gid_map",
		"id -u",
		"stat -c 'mapped-owner %u:%g' /vol/mapped-owner",
		"touch /vol/created",
		"echo evil >> /vol/host-root && echo WROTE-HOST-ROOT",
		"stat -c 'idmapped %u:%g' /idvol/f",
		"touch /idvol/by-root",
		"readlink /proc/1/ns/pid >/dev/null && echo PROC-OK",
		"ls /sys/class/net",
	}, "; ")
	spec := usernsSpec(t, root, base, "sh", "-c", script)
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind"}},
		specs.Mount{Destination: "/idvol", Type: "bind", Source: idVol, Options: []string{"rbind"},
			UIDMappings: idMap(base), GIDMappings: idMap(base)})
	out, st, err := e.run("userns", spec)
	must(t, err)
	t.Logf("output:\n%s", out)
	for _, want := range []string{
		fmt.Sprintf("0 %d 65536", base), // uid_map then gid_map
		"\n0\n",                         // id -u
		"mapped-owner 7:7",              // host base+7 is 7 inside
		"idmapped 0:0",                  // host root's file through the idmapped mount
		"PROC-OK",                       // proc mounted in the PID namespace the user namespace owns
		"lo",                            // sysfs of the pod's network namespace
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), " ")+"\n", strings.Join(strings.Fields(want), " ")) && !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "WROTE-HOST-ROOT") {
		t.Error("container root wrote a file the host's root owns")
	}
	if st.ExitCode() != 0 {
		t.Errorf("exit %d", st.ExitCode())
	}
	var s unix.Stat_t
	must(t, unix.Stat(filepath.Join(vol, "created"), &s))
	if s.Uid != base || s.Gid != base {
		t.Errorf("file made by container root in a plain volume is %d:%d on the host, want %d:%d", s.Uid, s.Gid, base, base)
	}
	must(t, unix.Stat(filepath.Join(idVol, "by-root"), &s))
	if s.Uid != 0 {
		t.Errorf("file made by container root through an idmapped mount is uid %d on disk, want 0", s.Uid)
	}
	if b, _ := os.ReadFile(hostRoot); string(b) != "root" {
		t.Errorf("host root's file changed: %q", b)
	}
}

func chownTree(t *testing.T, dir string, id int) {
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	}))
}

// TestUserNSLifecycle: a container whose init was forked into its PID
// namespace by the constructor is created, killed and reaped like any
// other (a killed created container, the adopted init's pid in State), and
// an exec joins its user namespace as its root.
func TestUserNSLifecycle(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	base := usernsBase() + 65536
	chownTree(t, root, int(base))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := usernsSpec(t, root, base, "sleep", "100")
	spec.Linux.CgroupsPath = e.cg + "/usernslife"
	c, err := e.rt.Create(ctx, "usernslife", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "usernslife", true)
	st, err := e.rt.State(ctx, "usernslife")
	must(t, err)
	if st.Status != specs.StateCreated || st.Pid != c.Pid {
		t.Fatalf("state %+v, want created pid %d", st, c.Pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", c.Pid))
	must(t, err)
	if f := strings.Fields(string(b)); len(f) != 3 || f[1] != strconv.Itoa(int(base)) {
		t.Fatalf("init's uid_map %q", b)
	}
	// Delete of a created container kills the adopted init; we reap it.
	must(t, e.rt.Delete(ctx, "usernslife", false))
	if ws, err := c.Wait(); err != nil || ws.ExitCode() != 137 {
		t.Fatalf("init of deleted created container: %+v %v", ws, err)
	}

	c, err = e.rt.Create(ctx, "usernslife", spec, oci.IO{})
	must(t, err)
	defer func() { _ = e.rt.Delete(ctx, "usernslife", true); _, _ = c.Wait() }() // we reap the adopted init
	must(t, e.rt.Start(ctx, "usernslife"))
	r, w, _ := os.Pipe()
	p, err := e.rt.Exec(ctx, "usernslife", &specs.Process{Args: []string{"sh", "-c", "cat /proc/self/uid_map; id -u; echo $$; touch /by-exec"},
		Env: []string{"PATH=/bin"}, Cwd: "/"}, oci.IO{Stdout: w, Stderr: w})
	w.Close()
	must(t, err)
	pst, err := p.Wait()
	must(t, err)
	out, _ := io.ReadAll(r)
	r.Close()
	if pst.ExitCode() != 0 || !strings.Contains(string(out), strconv.Itoa(int(base))) || !strings.Contains(string(out), "\n0\n") {
		t.Fatalf("exec exit %d output %q", pst.ExitCode(), out)
	}
	var fst unix.Stat_t
	must(t, unix.Stat(filepath.Join(root, "by-exec"), &fst))
	if fst.Uid != base {
		t.Errorf("file made by exec is uid %d on the host, want %d", fst.Uid, base)
	}
	must(t, e.rt.Kill(ctx, "usernslife", unix.SIGKILL, true))
	ws, err := c.Wait()
	must(t, err)
	if ws.ExitCode() != 137 {
		t.Fatalf("killed exit %d", ws.ExitCode())
	}
	must(t, e.rt.Delete(ctx, "usernslife", false))
}
