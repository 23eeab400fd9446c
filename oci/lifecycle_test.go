package oci_test

import (
	"context"
	"errors"
	"io"
	"os"
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

// started creates and starts a container running script, with stdin and
// stdout pipes; the returned cleanup force-deletes it and reaps the init.
type started struct {
	c   *oci.Container
	in  *os.File
	out *os.File
}

func (e *env) start(t *testing.T, id string, spec *specs.Spec) *started {
	t.Helper()
	ctx := context.Background()
	spec.Linux.CgroupsPath = e.cg + "/" + id
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	c, err := e.rt.Create(ctx, id, spec, oci.IO{Stdin: inR, Stdout: outW, Stderr: outW})
	inR.Close()
	outW.Close()
	must(t, err)
	s := &started{c: c, in: inW, out: outR}
	t.Cleanup(func() {
		_ = e.rt.Delete(ctx, id, true)
		_, _ = c.Wait()
		inW.Close()
		outR.Close()
		e.assertClean(t, id)
	})
	must(t, e.rt.Start(ctx, id))
	return s
}

// line reads one line of the container's output.
func (s *started) line(t *testing.T) string {
	t.Helper()
	_ = s.out.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := s.out.Read(one)
		if n == 1 && one[0] == '\n' {
			return string(b)
		}
		b = append(b, one[:n]...)
		if err != nil {
			t.Fatalf("read output: %v (so far %q)", err, b)
		}
	}
}

// Kill of the init alone leaves the container's other processes (without
// a PID namespace nothing takes them down); kill of all ends them too.
func TestKillOneVersusAll(t *testing.T) { bothInits(t, testKillOneVersusAll) }

func testKillOneVersusAll(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	tests := []struct {
		name string
		sig  unix.Signal
	}{
		{"SIGKILL", unix.SIGKILL},
		{"SIGTERM", unix.SIGTERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", "sleep 100 & echo bg=$!; wait")
			spec.Linux.Namespaces = spec.Linux.Namespaces[1:] // host PID namespace
			s := e.start(t, "kill", spec)
			bg, err := strconv.Atoi(strings.TrimPrefix(s.line(t), "bg="))
			must(t, err)
			must(t, e.rt.Kill(ctx, "kill", tc.sig, false))
			ws, err := s.c.Wait()
			must(t, err)
			if !ws.Signaled || ws.Signal != tc.sig || ws.ExitCode() != 128+int(tc.sig) {
				t.Errorf("init exit %+v, want killed by %v (code %d)", ws, tc.sig, 128+int(tc.sig))
			}
			pids, err := e.rt.Pids(ctx, "kill")
			must(t, err)
			if !slices.Contains(pids, bg) {
				t.Fatalf("kill of the init also ended the background process %d (pids %v)", bg, pids)
			}
			if st, _ := e.rt.State(ctx, "kill"); st.Status != specs.StateStopped {
				t.Errorf("status %s with the init dead", st.Status)
			}
			if err := e.rt.Kill(ctx, "kill", tc.sig, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("kill of a stopped container's init: %v, want failed precondition", err)
			}
			must(t, e.rt.Kill(ctx, "kill", tc.sig, true))
			waitGone(t, bg)
			if pids, _ := e.rt.Pids(ctx, "kill"); len(pids) != 0 {
				t.Errorf("pids after kill all: %v", pids)
			}
			must(t, e.rt.Delete(ctx, "kill", false))
		})
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
	}
	t.Fatalf("process %d still runs", pid)
}

// Update changes the limits of a running container: a lowered pids.max
// refuses its next fork, and the stats show the new memory limit.
func TestUpdateRunning(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	spec := baseSpec(root, "sh", "-c", "echo ready; while read x; do /bin/true && echo forked || echo refused; done")
	s := e.start(t, "upd", spec)
	if l := s.line(t); l != "ready" {
		t.Fatalf("first line %q", l)
	}
	tests := []struct {
		name string
		pids int64
		want string
	}{
		{"pids.max 10 allows it", 10, "forked"},
		// busybox's sh says so and ends.
		{"pids.max 1 refuses the fork", 1, "can't fork"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := int64(64 << 20)
			must(t, e.rt.Update(ctx, "upd", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &tc.pids}, Memory: &specs.LinuxMemory{Limit: &mem}}))
			_, _ = s.in.Write([]byte("go\n"))
			if got := s.line(t); !strings.Contains(got, tc.want) {
				t.Errorf("after update: %q, want %q", got, tc.want)
			}
			st, err := e.rt.Stats(ctx, "upd")
			must(t, err)
			if st.Pids.Limit != uint64(tc.pids) || st.Memory.Limit != uint64(mem) {
				t.Errorf("stats pids.limit %d memory.limit %d", st.Pids.Limit, st.Memory.Limit)
			}
		})
	}
	if err := e.rt.Update(ctx, "upd", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("update with nothing: %v", err)
	}
	if err := e.rt.Update(ctx, "nope", &specs.LinuxResources{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("update of an unknown container: %v", err)
	}
}

// Pause freezes every process of the container (exec is refused while
// paused); resume thaws them.
func TestPauseFreezesProcesses(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	spec := baseSpec(root, "sh", "-c", "echo ready; while true; do echo tick; sleep 0.01; done")
	s := e.start(t, "frz", spec)
	s.line(t)
	if err := e.rt.Resume(ctx, "frz"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("resume of a running container: %v, want failed precondition", err)
	}
	must(t, e.rt.Pause(ctx, "frz"))
	if err := e.rt.Pause(ctx, "frz"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("pause of a paused container: %v, want failed precondition", err)
	}
	// Nothing is written while frozen: drain what was in flight, then
	// expect silence.
	_ = s.out.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.ReadAll(s.out)
	_ = s.out.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if b, _ := io.ReadAll(s.out); len(b) > 0 {
		t.Errorf("a paused container wrote %q", b)
	}
	if _, err := e.rt.Exec(ctx, "frz", &specs.Process{Args: []string{"true"}, Cwd: "/"}, oci.IO{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec in a paused container: %v, want failed precondition", err)
	}
	must(t, e.rt.Resume(ctx, "frz"))
	if l := s.line(t); !strings.Contains(l, "tick") {
		t.Errorf("after resume: %q", l)
	}
}

// An exec'd process gets every attribute its process asks for, in the
// container's namespaces and cgroup, under the container's seccomp.
func TestExecAttributes(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	enospc := uint(unix.ENOSPC)
	spec := baseSpec(root, "sleep", "100")
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 864000}}
	spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &enospc}}}
	withApplets(t, root, "awk")
	s := e.start(t, "ex", spec)
	waitExeced(t, s.c.Pid, "sleep")
	initNS := map[string]string{}
	for _, ns := range []string{"mnt", "net", "ipc", "uts", "pid", "cgroup", "time"} {
		initNS[ns], _ = os.Readlink("/proc/" + strconv.Itoa(s.c.Pid) + "/ns/" + ns)
	}
	initCg, _ := os.ReadFile("/proc/" + strconv.Itoa(s.c.Pid) + "/cgroup")
	umask := uint32(0o077)
	adj := 300
	tests := []struct {
		name   string
		p      specs.Process
		script string
		want   []string
		code   int
	}{
		{name: "user, groups, env, cwd, umask", p: specs.Process{User: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{9}, Umask: &umask},
			Env: []string{"PATH=/bin", "X=y"}, Cwd: "/tmp"},
			script: "id -u; id -G; echo X=$X; pwd; umask", want: []string{"1000\n", "1001 9\n", "X=y\n", "/tmp\n", "0077\n"}},
		{name: "capabilities and no_new_privs", p: specs.Process{Env: []string{"PATH=/bin"}, Cwd: "/", NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Effective: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}}},
			script: "grep -E 'CapEff|CapBnd|NoNewPrivs' /proc/self/status", want: []string{"CapEff:\t0000000000000020", "CapBnd:\t0000000000000020", "NoNewPrivs:\t1"}},
		{name: "container seccomp applies", p: specs.Process{Env: []string{"PATH=/bin"}, Cwd: "/"},
			script: "mkdir /tmp/x 2>&1; true", want: []string{"No space left on device"}},
		{name: "rlimits and oomScoreAdj", p: specs.Process{Env: []string{"PATH=/bin"}, Cwd: "/", OOMScoreAdj: &adj,
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 111, Hard: 222}}},
			script: "cat /proc/self/oom_score_adj; grep 'open files' /proc/self/limits", want: []string{"300\n", "111                  222"}},
		{name: "namespaces and cgroup of the init", p: specs.Process{Env: []string{"PATH=/bin"}, Cwd: "/"},
			script: "for n in mnt net ipc uts pid cgroup time; do readlink /proc/self/ns/$n; done; awk '{print ($1 >= 864000) ? \"boottime ahead\" : \"boottime not ahead\"}' /proc/uptime",
			want:   []string{initNS["mnt"], initNS["net"], initNS["ipc"], initNS["uts"], initNS["pid"], initNS["cgroup"], initNS["time"], "boottime ahead"}},
		{name: "exit by signal is 128+n", p: specs.Process{Env: []string{"PATH=/bin"}, Cwd: "/"}, script: "kill -TERM $$", code: 128 + 15},
		{name: "exit code", p: specs.Process{Env: []string{"PATH=/bin"}, Cwd: "/"}, script: "exit 42", code: 42},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.Args = []string{"sh", "-c", tc.script}
			r, w, _ := os.Pipe()
			defer r.Close()
			proc, err := e.rt.Exec(ctx, "ex", &p, oci.IO{Stdout: w, Stderr: w})
			w.Close()
			must(t, err)
			out, _ := io.ReadAll(r)
			st, err := proc.Wait()
			must(t, err)
			if st.ExitCode() != tc.code {
				t.Errorf("exit %d, want %d (%q)", st.ExitCode(), tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("cgroup of the init", func(t *testing.T) {
		proc, err := e.rt.Exec(ctx, "ex", &specs.Process{Args: []string{"sleep", "100"}, Env: []string{"PATH=/bin"}, Cwd: "/"}, oci.IO{})
		must(t, err)
		waitExeced(t, proc.Pid, "sleep")
		cg, _ := os.ReadFile("/proc/" + strconv.Itoa(proc.Pid) + "/cgroup")
		_ = unix.Kill(proc.Pid, unix.SIGKILL)
		_, _ = proc.Wait()
		if string(cg) != string(initCg) {
			t.Errorf("exec'd process in cgroups\n%s\nnot the init's\n%s", cg, initCg)
		}
	})
}

// Edge states a caller reaches: force-delete of a paused container, exec
// into a stopped or unknown one, an exec refused by the kernel, a
// startContainer hook that fails. None may hang or leave anything.
func TestLifecycleEdges(t *testing.T) { bothInits(t, testLifecycleEdges) }

func testLifecycleEdges(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sh := func(args ...string) *specs.Process {
		return &specs.Process{Args: append([]string{"sh", "-c"}, args...), Env: []string{"PATH=/bin"}, Cwd: "/"}
	}
	t.Run("force delete of a paused container", func(t *testing.T) {
		s := e.start(t, "edge-pause", baseSpec(root, "sh", "-c", "sleep 100 & sleep 100"))
		waitExeced(t, s.c.Pid, "sleep")
		must(t, e.rt.Pause(ctx, "edge-pause"))
		must(t, e.rt.Delete(ctx, "edge-pause", true))
		if ws, err := s.c.Wait(); err != nil || !ws.Signaled {
			t.Errorf("init after force delete of a paused container: %+v %v", ws, err)
		}
	})
	t.Run("exec refused by the kernel, then a stopped and an unknown container", func(t *testing.T) {
		s := e.start(t, "edge-exec", baseSpec(root, "sleep", "100"))
		waitExeced(t, s.c.Pid, "sleep")
		low := -999
		p := sh("true")
		p.OOMScoreAdj = &low
		var pe *oci.PrivilegeError
		if _, err := e.rt.Exec(ctx, "edge-exec", p, oci.IO{}); !errors.As(err, &pe) || pe.Field != "process.oomScoreAdj" {
			t.Errorf("exec with oomScoreAdj below ours: %v", err)
		}
		p = sh("true")
		p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1 << 40, Hard: 1 << 40}}
		if _, err := e.rt.Exec(ctx, "edge-exec", p, oci.IO{}); !errors.As(err, &pe) || !strings.Contains(pe.Field, "RLIMIT_NOFILE") {
			t.Errorf("exec with an rlimit above the hard limit: %v", err)
		}
		if p, err := e.rt.Exec(ctx, "edge-exec", sh("true"), oci.IO{}); err != nil {
			t.Errorf("exec after refused ones: %v", err)
		} else {
			_, _ = p.Wait()
		}
		if kids := children(); len(kids) != 1 {
			t.Errorf("children after refused execs: %v (want the init only)", kids)
		}
		must(t, e.rt.Kill(ctx, "edge-exec", unix.SIGKILL, false))
		_, _ = s.c.Wait()
		if _, err := e.rt.Exec(ctx, "edge-exec", sh("true"), oci.IO{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("exec into a stopped container: %v", err)
		}
		if _, err := e.rt.Exec(ctx, "nope", sh("true"), oci.IO{}); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("exec into an unknown container: %v", err)
		}
	})
	t.Run("startContainer hook fails", func(t *testing.T) {
		spec := baseSpec(root, "sh", "-c", "echo user-process-ran")
		spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "exit 5"}}}}
		s := e.start(t, "edge-hook", spec)
		ws, err := s.c.Wait()
		must(t, err)
		b, _ := io.ReadAll(s.out)
		if ws.ExitCode() == 0 || strings.Contains(string(b), "user-process-ran") {
			t.Errorf("the user's process ran after a failed startContainer hook: exit %d, %q", ws.ExitCode(), b)
		}
	})
	t.Run("hook timeout", func(t *testing.T) {
		one := 1
		spec := baseSpec(root, "true")
		spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &one}}}
		t0 := time.Now()
		_, _, err := e.run("edge-timeout", spec)
		if err == nil || time.Since(t0) > 10*time.Second {
			t.Errorf("create with a hook past its timeout: %v after %v", err, time.Since(t0))
		}
		e.assertClean(t, "edge-timeout")
	})
}

// An update that carries device rules keeps the default devices usable,
// as the same rules do at create.
func TestUpdateDeviceRulesKeepDefaults(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	spec := baseSpec(root, "sh", "-c", "echo ready; while read x; do { echo x > /dev/null && echo null-ok; } 2>&1; done")
	spec.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	s := e.start(t, "upddev", spec)
	s.line(t)
	must(t, e.rt.Update(ctx, "upddev", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}))
	_, _ = s.in.Write([]byte("go\n"))
	if l := s.line(t); l != "null-ok" {
		t.Errorf("after an update denying all devices: %q, want /dev/null still usable", l)
	}
}
