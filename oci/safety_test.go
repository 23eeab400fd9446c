package oci_test

import (
	"context"
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
	"github.com/cri-server/cri-server/oci"
)

// assertClean fails the test if a container, a child process, one of the
// env's cgroups or a mount under the env's dir is left now (the env checks
// again at the end; this pins a leak on the case that made it).
func (e *env) assertClean(t *testing.T, id string) {
	t.Helper()
	if ids, _ := e.rt.List(); len(ids) > 0 {
		t.Errorf("containers left: %v", ids)
	}
	if kids := children(); len(kids) > 0 {
		t.Errorf("child processes left: %v", kids)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), e.dir) {
		t.Errorf("mount left under %s", e.dir)
	}
	e.assertGone(t, id)
}

// assertGone is assertClean for one container while others run.
func (e *env) assertGone(t *testing.T, id string) {
	t.Helper()
	if ids, _ := e.rt.List(); slices.Contains(ids, id) {
		t.Errorf("container %s left", id)
	}
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if _, err := os.Stat(filepath.Join(h, e.cg, id)); err == nil {
			t.Errorf("cgroup left: %s", filepath.Join(h, e.cg, id))
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state", id)); err == nil {
		t.Errorf("state dir of %s left", id)
	}
}

// Symlinks in the rootfs pointing outside it (absolute or by ..) never
// carry a mount or a device node out of the root, and proc is never
// mounted through one.
func TestSymlinkEscapes(t *testing.T) { bothInits(t, testSymlinkEscapes) }

func testSymlinkEscapes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, root, outside string) *specs.Spec
		wantErr error // nil: the create succeeds; never does anything land outside
	}{
		{name: "proc at an absolute symlink", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Remove(filepath.Join(root, "proc")))
			must(t, os.Symlink(outside, filepath.Join(root, "proc")))
			return baseSpec(root, "true")
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "proc at a ../ symlink", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Remove(filepath.Join(root, "proc")))
			must(t, os.Symlink("../../../../../../../.."+outside, filepath.Join(root, "proc")))
			return baseSpec(root, "true")
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "sysfs at a symlink", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Remove(filepath.Join(root, "sys")))
			must(t, os.Symlink(outside, filepath.Join(root, "sys")))
			return baseSpec(root, "true")
		}}, // mounted where the link points inside the root
		{name: "device under an absolute /dev symlink", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Remove(filepath.Join(root, "dev")))
			must(t, os.Symlink(outside, filepath.Join(root, "dev")))
			s := baseSpec(root, "true")
			s.Mounts = withoutDest(s.Mounts, "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/evil", Type: "c", Major: 1, Minor: 3}}
			return s
		}, wantErr: errAny},
		{name: "device path with ..", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			s := baseSpec(root, "true")
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/../../../../../../.." + outside + "/evil", Type: "c", Major: 1, Minor: 3}}
			return s
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "device at a ../ symlink in /dev", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			// /dev is a tmpfs here; the link is made by a createRuntime hook
			// after the mounts, where a container's own image could not.
			s := baseSpec(root, "true")
			s.Mounts = withoutDest(s.Mounts, "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue")
			must(t, os.Symlink("../../../../../../.."+outside, filepath.Join(root, "dev", "link")))
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/link/evil", Type: "c", Major: 1, Minor: 3}}
			return s
		}, wantErr: errAny},
		{name: "bind destination through a ../ symlink", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Symlink("../../../../../../.."+outside, filepath.Join(root, "tmp", "up")))
			s := baseSpec(root, "true")
			src := filepath.Join(e.dir, "src-"+strconv.Itoa(len(outside)))
			must(t, os.MkdirAll(src, 0o755))
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp/up/evil", Type: "bind", Source: src, Options: []string{"rbind"}})
			return s
		}},
		{name: "tmpfs over /proc/sys through a symlink to /proc", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Symlink("/proc", filepath.Join(root, "tmp", "p")))
			s := baseSpec(root, "true")
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp/p/sys", Type: "tmpfs", Source: "tmpfs"})
			return s
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "proc mounted elsewhere through a symlink", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			must(t, os.Symlink("../proc", filepath.Join(root, "tmp", "q")))
			s := baseSpec(root, "true")
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp/q", Type: "proc", Source: "proc"})
			return s
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "destination with .. above the root", prepare: func(t *testing.T, root, outside string) *specs.Spec {
			s := baseSpec(root, "true")
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/../../../../../../.." + outside + "/evil", Type: "tmpfs", Source: "tmpfs"})
			return s
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(e.dir, "c"+strconv.Itoa(i))
			must(t, os.Mkdir(dir, 0o755))
			root := busyboxRootfs(t, dir)
			outside := filepath.Join(dir, "outside")
			must(t, os.Mkdir(outside, 0o755))
			spec := tc.prepare(t, root, outside)
			_, st, err := e.run("esc", spec)
			if tc.wantErr == errAny {
				t.Logf("create: %v", err) // refused or kept inside: both fine
			} else if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err %v, want %v", err, tc.wantErr)
				}
			} else if err != nil || st.ExitCode() != 0 {
				t.Errorf("create: %v, exit %d", err, st.ExitCode())
			}
			if ents, _ := os.ReadDir(outside); len(ents) > 0 {
				t.Errorf("something landed outside the root: %v", ents)
			}
			e.assertClean(t, "esc")
		})
	}
}

// errAny: the create may fail or succeed; only where things land matters.
var errAny = errors.New("any")

func withoutDest(ms []specs.Mount, dests ...string) []specs.Mount {
	var out []specs.Mount
	for _, m := range ms {
		drop := false
		for _, d := range dests {
			drop = drop || m.Destination == d
		}
		if !drop {
			out = append(out, m)
		}
	}
	return out
}

// CVE-2024-21626: no fd of the runtime or the caller reaches the
// container, so a process.cwd of /proc/self/fd/N cannot name a host
// directory, and the process's fds are only its stdio.
func TestNoHostFdOrCwd(t *testing.T) { bothInits(t, testNoHostFdOrCwd) }

func testNoHostFdOrCwd(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	// The caller holds an fd without close-on-exec, as a careless caller
	// (or a parent that forgot) would.
	leak, err := os.Open(e.dir)
	must(t, err)
	defer leak.Close()
	if _, err := unixFcntlClearCloexec(leak); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for fd := 3; fd <= 9; fd++ {
		t.Run("cwd /proc/self/fd/"+strconv.Itoa(fd), func(t *testing.T) {
			spec := baseSpec(root, "sleep", "100")
			spec.Process.Cwd = "/proc/self/fd/" + strconv.Itoa(fd)
			spec.Linux.CgroupsPath = e.cg + "/cwd"
			c, err := e.rt.Create(ctx, "cwd", spec, oci.IO{})
			if err != nil {
				e.assertClean(t, "cwd")
				return // refused: fine
			}
			defer func() { _ = e.rt.Delete(ctx, "cwd", true); _, _ = c.Wait(); e.assertClean(t, "cwd") }()
			must(t, e.rt.Start(ctx, "cwd"))
			cwd, _ := os.Readlink("/proc/" + strconv.Itoa(c.Pid) + "/cwd")
			if !strings.HasPrefix(cwd, root) {
				t.Errorf("the container's cwd is %s, outside its root %s", cwd, root)
			}
		})
	}
	t.Run("fds of the init, before and after start, and of an exec", func(t *testing.T) {
		spec := baseSpec(root, "sleep", "100")
		spec.Linux.CgroupsPath = e.cg + "/fds"
		c, err := e.rt.Create(ctx, "fds", spec, oci.IO{})
		must(t, err)
		defer func() { _ = e.rt.Delete(ctx, "fds", true); _, _ = c.Wait(); e.assertClean(t, "fds") }()
		// Before start the init holds what it needs to finish (the state
		// dir to reach the exec fifo): nothing of the caller's.
		// Before start the init holds what it needs to finish (the sync
		// socket, the state dir for the exec fifo, its binary), all
		// close-on-exec, as is everything it inherited.
		checkFds(t, "created init", c.Pid, true)
		must(t, e.rt.Start(ctx, "fds"))
		waitExeced(t, c.Pid, "sleep")
		checkFds(t, "started process", c.Pid, false)
		r, w, _ := os.Pipe()
		defer r.Close()
		p, err := e.rt.Exec(ctx, "fds", &specs.Process{Args: []string{"sleep", "100"}, Env: []string{"PATH=/bin"}, Cwd: "/"}, oci.IO{Stdout: w})
		w.Close()
		must(t, err)
		waitExeced(t, p.Pid, "sleep")
		checkFds(t, "exec'd process", p.Pid, false)
		must(t, e.rt.Kill(ctx, "fds", 9, true))
		_, _ = p.Wait()
	})
}

// waitExeced waits until pid runs comm.
func waitExeced(t *testing.T, pid int, comm string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(b)) == comm {
			return
		}
	}
	t.Fatalf("pid %d never ran %s", pid, comm)
}

// checkFds fails if pid holds an fd beyond 0-2 (cloexecOK: one that
// survives an exec). A process that has just exec'd may still be in its
// dynamic loader, which holds each library open for a moment: what it
// holds must be gone within a second.
func checkFds(t *testing.T, what string, pid int, cloexecOK bool) {
	t.Helper()
	var bad []string
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		bad = badFds(t, pid, cloexecOK)
		if len(bad) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, b := range bad {
		t.Errorf("%s holds %s", what, b)
	}
}

func badFds(t *testing.T, pid int, cloexecOK bool) []string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	must(t, err)
	var bad []string
	for _, ent := range ents {
		n, _ := strconv.Atoi(ent.Name())
		if n <= 2 {
			continue
		}
		target, _ := os.Readlink(filepath.Join(dir, ent.Name()))
		info, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + ent.Name())
		var flags int64
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags, _ = strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			}
		}
		if !cloexecOK || flags&unix.O_CLOEXEC == 0 {
			bad = append(bad, fmt.Sprintf("fd %d -> %s (flags %o)", n, target, flags))
		}
	}
	return bad
}
