package oci_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

func TestExitStatus(t *testing.T) { bothInits(t, testExitStatus) }

func testExitStatus(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	tests := []struct {
		name  string
		args  []string
		hostP bool // in the host pid namespace: a pid 1 cannot be killed from inside
		want  int
	}{
		{"zero", []string{"true"}, false, 0},
		{"code", []string{"sh", "-c", "exit 7"}, false, 7},
		{"signal", []string{"sh", "-c", "kill -9 $$"}, true, 128 + 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, tc.args...)
			if tc.hostP {
				spec.Linux.Namespaces = spec.Linux.Namespaces[1:]
			}
			_, st, err := e.run("exit-"+tc.name, spec)
			must(t, err)
			if st.ExitCode() != tc.want {
				t.Fatalf("exit code %d, want %d", st.ExitCode(), tc.want)
			}
		})
	}
}

func TestIsolation(t *testing.T) { bothInits(t, testIsolation) }

func testIsolation(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "sh", "-c", `echo host=$(hostname); echo keys=$(wc -c < /proc/keys); grep CapEff /proc/self/status; echo fds=$(ls /proc/self/fd | wc -l); echo pid=$$; echo cwd=$(pwd); touch /proc/sys/kernel/x 2>/dev/null || echo rosys`)
	// CRI drops a capability from every set; root's effective set after exec
	// is the bounding set.
	c := []string{"CAP_CHOWN"}
	spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c}
	spec.Process.Cwd = "/tmp"
	out, st, err := e.run("iso", spec)
	must(t, err)
	if st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), out)
	}
	for _, want := range []string{
		"host=ctr",
		"keys=0",                    // masked path reads empty
		"CapEff:\t0000000000000001", // only CAP_CHOWN
		"fds=4",                     // 0,1,2 and the fd ls opens: nothing leaked
		"pid=1",
		"cwd=/tmp",
		"rosys",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestJoinNetns(t *testing.T) { bothInits(t, testJoinNetns) }

func testJoinNetns(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	// A netns pinned by bind mount, as the pod sandbox does.
	pin := filepath.Join(e.dir, "netns")
	must(t, os.WriteFile(pin, nil, 0o644))
	done := make(chan error)
	go func() {
		// Unshare on a throwaway locked thread, pin it, let the thread die.
		defer close(done)
		lockAndPin(pin, done)
	}()
	must(t, <-done)
	defer unix.Unmount(pin, unix.MNT_DETACH)
	var want unix.Stat_t
	must(t, unix.Stat(pin, &want))
	spec := baseSpec(root, "sh", "-c", "readlink /proc/self/ns/net")
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = pin
		}
	}
	out, _, err := e.run("netns", spec)
	must(t, err)
	if got := strings.TrimSpace(out); !strings.Contains(got, "["+itoa(want.Ino)+"]") {
		t.Fatalf("container netns %s, want inode %d", got, want.Ino)
	}
	must(t, unix.Unmount(pin, unix.MNT_DETACH))
}

func TestMountSymlinkEscape(t *testing.T) { bothInits(t, testMountSymlinkEscape) }

func testMountSymlinkEscape(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	outside := filepath.Join(e.dir, "outside")
	must(t, os.Mkdir(outside, 0o755))
	// Absolute and ../ symlinks pointing at a host dir.
	must(t, os.Symlink(outside, filepath.Join(root, "abs")))
	must(t, os.Symlink("../../../../../../.."+outside, filepath.Join(root, "rel")))
	spec := baseSpec(root, "sh", "-c", "ls -d /abs/x /rel/y")
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/abs/x", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/rel/y", Type: "tmpfs", Source: "tmpfs"})
	out, st, err := e.run("escape", spec)
	must(t, err)
	if st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), out)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Fatalf("mount escaped the root: %v created in %s", ents, outside)
	}
	if _, err := os.Stat(filepath.Join(root, outside, "x")); err != nil {
		t.Fatalf("mount point not created inside root: %v", err)
	}
}

func TestBadInput(t *testing.T) { bothInits(t, testBadInput) }

func testBadInput(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	low := -1000
	tests := []struct {
		name  string
		mod   func(*specs.Spec)
		class error
	}{
		{"apparmor", func(s *specs.Spec) { s.Process.ApparmorProfile = "x" }, errdefs.ErrInvalidArgument},
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, errdefs.ErrInvalidArgument},
		{"proc elsewhere", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp/p", Type: "proc", Source: "proc"})
		}, errdefs.ErrInvalidArgument},
		{"over proc self", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/self/attr", Type: "tmpfs", Source: "tmpfs"})
		}, errdefs.ErrInvalidArgument},
		{"missing binary", func(s *specs.Spec) { s.Process.Args = []string{"/nope"} }, errdefs.ErrInvalidArgument},
		{"personality flags", func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux, Flags: []specs.LinuxPersonalityFlag{"x"}}
		}, errdefs.ErrNotImplemented},
		{"bad ioprio", func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 9}
		}, errdefs.ErrInvalidArgument},
		{"scheduler policy", func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: "SCHED_NOPE"} }, errdefs.ErrInvalidArgument},
		{"oom score", func(s *specs.Spec) { s.Process.OOMScoreAdj = &low }, errdefs.ErrPermissionDenied},
		{"rlimit", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 40, Soft: 1024}}
		}, errdefs.ErrPermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "true")
			tc.mod(spec)
			spec.Linux.CgroupsPath = e.cg + "/bad"
			_, err := e.rt.Create(context.Background(), "bad", spec, oci.IO{})
			if !errors.Is(err, tc.class) {
				t.Fatalf("err %v, want class %v", err, tc.class)
			}
			if tc.class == errdefs.ErrPermissionDenied {
				var pe *oci.PrivilegeError
				if !errors.As(err, &pe) || pe.Field == "" {
					t.Fatalf("err %v is not a PrivilegeError naming the field", err)
				}
			}
		})
	}
}

func TestCreateStartBarrierAndExec(t *testing.T) { bothInits(t, testCreateStartBarrierAndExec) }

func testCreateStartBarrierAndExec(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := baseSpec(root, "sleep", "100")
	spec.Linux.CgroupsPath = e.cg + "/barrier"
	c, err := e.rt.Create(ctx, "barrier", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "barrier", true)
	st, err := e.rt.State(ctx, "barrier")
	must(t, err)
	if st.Status != specs.StateCreated || st.Pid != c.Pid {
		t.Fatalf("state %+v, want created pid %d", st, c.Pid)
	}
	// A created container may be deleted without force (as with runc); its
	// init is killed and we, its parent, reap it.
	must(t, e.rt.Delete(ctx, "barrier", false))
	if ws, err := c.Wait(); err != nil || ws.ExitCode() != 137 {
		t.Fatalf("init of deleted created container: %+v %v", ws, err)
	}
	c, err = e.rt.Create(ctx, "barrier", spec, oci.IO{})
	must(t, err)
	if _, err := e.rt.Create(ctx, "barrier", spec, oci.IO{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second create: %v", err)
	}
	must(t, e.rt.Start(ctx, "barrier"))
	if st, _ := e.rt.State(ctx, "barrier"); st.Status != specs.StateRunning {
		t.Fatalf("status %s after start", st.Status)
	}
	if err := e.rt.Delete(ctx, "barrier", false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("delete running without force: %v", err)
	}
	r, w, _ := os.Pipe()
	p, err := e.rt.Exec(ctx, "barrier", &specs.Process{Args: []string{"sh", "-c", "hostname; echo $$; exit 5"},
		Env: []string{"PATH=/bin"}, Cwd: "/"}, oci.IO{Stdout: w})
	w.Close()
	must(t, err)
	pst, err := p.Wait()
	must(t, err)
	buf := make([]byte, 100)
	n, _ := r.Read(buf)
	r.Close()
	out := string(buf[:n])
	if pst.ExitCode() != 5 || !strings.HasPrefix(out, "ctr\n") || strings.TrimSpace(strings.Split(out, "\n")[1]) == "1" {
		t.Fatalf("exec exit %d output %q", pst.ExitCode(), out)
	}
	must(t, e.rt.Kill(ctx, "barrier", unix.SIGKILL, true))
	ws, err := c.Wait()
	must(t, err)
	if ws.ExitCode() != 137 {
		t.Fatalf("killed exit %d", ws.ExitCode())
	}
	must(t, e.rt.Delete(ctx, "barrier", false))
	if _, err := e.rt.State(ctx, "barrier"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("state after delete: %v", err)
	}
	must(t, e.rt.Delete(ctx, "barrier", true))
}

// A mount namespace joined by path still gets the container's own root
// inside it, as with runc: the process sees the rootfs, not the namespace
// owner's root.
func TestJoinMountNamespaceByPath(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	must(t, os.WriteFile(filepath.Join(root, "etc", "marker"), []byte("in-rootfs"), 0o644))
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "100")
	must(t, holder.Start())
	defer func() { holder.Process.Kill(); holder.Wait() }()
	// unshare(1) has created the namespace once it execs sleep.
	deadline := time.Now().Add(5 * time.Second)
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid))
		if ns != "" && ns != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare did not make a mount namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	spec := baseSpec(root, "cat", "/etc/marker")
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid)
		}
	}
	out, st, err := e.run("joinmnt", spec)
	must(t, err)
	if st.ExitCode() != 0 || out != "in-rootfs" {
		t.Fatalf("exit %d, output %q; want 0 and the rootfs's marker", st.ExitCode(), out)
	}
}
