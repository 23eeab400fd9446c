package oci_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
)

func TestSeccomp(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	eperm := uint(unix.EPERM)
	enospc := uint(unix.ENOSPC)
	tests := []struct {
		name  string
		sc    specs.LinuxSyscall
		want  string
		privs bool // no_new_privs off: installed while we still hold CAP_SYS_ADMIN
	}{
		{"errno mkdir", specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}, "Operation not permitted", false},
		{"errnoRet", specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &enospc}, "No space left", false},
		{"arg condition not matching", specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0o700, Op: specs.OpEqualTo}}}, "made", false},
		{"without no_new_privs", specs.LinuxSyscall{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}, "Operation not permitted", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", "mkdir /tmp/d 2>&1 && echo made")
			spec.Process.NoNewPrivileges = !tc.privs
			spec.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
				Syscalls:      []specs.LinuxSyscall{tc.sc},
			}
			out, _, err := e.run("seccomp", spec)
			must(t, err)
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output %q lacks %q", out, tc.want)
			}
		})
	}
}

func TestUserNamespace(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "sh", "-c", "cat /proc/self/uid_map; id -u; ls -ln /dev/null; grep Cap /proc/self/status")
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = m, m
	// sysfs cannot be mounted in a user namespace without a new netns owned by it; keep it simple.
	must(t, os.Chown(root, 100000, 100000))
	// The mapped root must be able to reach the rootfs.
	must(t, os.Chmod(e.dir, 0o755))
	must(t, os.Chmod(filepath.Dir(e.dir), 0o755))
	out, st, err := e.run("userns", spec)
	must(t, err)
	if st.ExitCode() != 0 || !strings.Contains(out, "100000") || !strings.Contains(out, "\n0\n") {
		t.Fatalf("exit %d output %q", st.ExitCode(), out)
	}
}

func TestTerminal(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	spec := baseSpec(root, "sh", "-c", "test -t 0 && test -t 1 && echo tty-ok")
	spec.Process.Terminal = true
	spec.Linux.CgroupsPath = e.cg + "/tty"
	c, err := e.rt.Create(ctx, "tty", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "tty", true)
	if c.Console == nil {
		t.Fatal("no console")
	}
	defer c.Console.Close()
	must(t, e.rt.Start(ctx, "tty"))
	_ = c.Console.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(c.Console, b, 6)
	if !strings.Contains(string(b[:n]), "tty-ok") {
		t.Fatalf("console output %q", b[:n])
	}
	_, err = c.Wait()
	must(t, err)
	must(t, e.rt.Delete(ctx, "tty", false))
}

func TestPauseResumeAndHooks(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	marks := filepath.Join(e.dir, "marks")
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo " + name + " >> " + marks}}
	}
	spec := baseSpec(root, "sleep", "100")
	spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{hook("createRuntime")},
		Prestart:  []specs.Hook{hook("prestart")}, //nolint:staticcheck // still written by older tools
		Poststart: []specs.Hook{hook("poststart")}, Poststop: []specs.Hook{hook("poststop")}}
	spec.Linux.CgroupsPath = e.cg + "/pause"
	c, err := e.rt.Create(ctx, "pause", spec, oci.IO{})
	must(t, err)
	reaped := false
	defer func() {
		if !reaped {
			e.rt.Delete(ctx, "pause", true)
			c.Wait()
		}
	}()
	must(t, e.rt.Start(ctx, "pause"))
	must(t, e.rt.Pause(ctx, "pause"))
	if st, _ := e.rt.State(ctx, "pause"); st.Status != "paused" {
		t.Fatalf("status %s after pause", st.Status)
	}
	must(t, e.rt.Resume(ctx, "pause"))
	if st, _ := e.rt.State(ctx, "pause"); st.Status != specs.StateRunning {
		t.Fatalf("status %s after resume", st.Status)
	}
	must(t, e.rt.Delete(ctx, "pause", true))
	ws, err := c.Wait()
	reaped = true
	must(t, err)
	if !ws.Signaled || ws.Signal != unix.SIGKILL {
		t.Fatalf("exit %+v after forced delete", ws)
	}
	b, _ := os.ReadFile(marks)
	if got := strings.Fields(string(b)); strings.Join(got, ",") != "prestart,createRuntime,poststart,poststop" {
		t.Fatalf("hooks ran %v", got)
	}
}

func TestExecUserNamespace(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	spec := baseSpec(root, "sleep", "100")
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = m, m
	must(t, os.Chown(root, 200000, 200000))
	must(t, os.Chmod(e.dir, 0o755))
	must(t, os.Chmod(filepath.Dir(e.dir), 0o755))
	spec.Linux.CgroupsPath = e.cg + "/uexec"
	c, err := e.rt.Create(ctx, "uexec", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "uexec", true)
	must(t, e.rt.Start(ctx, "uexec"))
	r, w, _ := os.Pipe()
	// A dropped capability must stay dropped in the exec'd process too.
	caps := []string{"CAP_KILL"}
	p, err := e.rt.Exec(ctx, "uexec", &specs.Process{Args: []string{"sh", "-c", "id -u; cat /proc/self/uid_map; hostname; grep CapEff /proc/self/status"},
		Env: []string{"PATH=/bin"}, Cwd: "/", Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}}, oci.IO{Stdout: w, Stderr: w})
	w.Close()
	must(t, err)
	out, _ := io.ReadAll(r)
	r.Close()
	st, err := p.Wait()
	must(t, err)
	for _, want := range []string{"0\n", "200000", "ctr", "CapEff:\t0000000000000020"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("exec exit %d output %q lacks %q", st.ExitCode(), out, want)
		}
	}
	must(t, e.rt.Delete(ctx, "uexec", true))
	_, _ = c.Wait()
}

func TestPidsLimit(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "sh", "-c", "sleep 5 & sleep 5 & sleep 5 & echo forked; kill %1 %2 %3 2>/dev/null; true")
	lim := int64(3)
	spec.Linux.Resources = &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &lim}}
	out, _, err := e.run("pids", spec)
	must(t, err)
	if !strings.Contains(out, "can't fork") && !strings.Contains(out, "Resource temporarily unavailable") {
		t.Fatalf("a fork beyond pids.max succeeded: %q", out)
	}
}

func TestPersonalityAndIOPriority(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "sh", "-c", "cat /proc/self/personality 2>/dev/null; uname -m")
	spec.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	spec.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
	out, st, err := e.run("pers", spec)
	must(t, err)
	if st.ExitCode() != 0 || !strings.Contains(out, "i686") {
		t.Fatalf("exit %d output %q: want a 32-bit machine name", st.ExitCode(), out)
	}
}
