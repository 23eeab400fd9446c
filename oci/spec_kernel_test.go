package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// A time namespace with offsets: the container's boot and monotonic clocks
// start where the spec says.
func TestTimeNamespaceOffsets(t *testing.T) {
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		t.Skip("kernel without time namespaces")
	}
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	tests := []struct {
		name    string
		offsets map[string]specs.LinuxTimeOffset
		noNS    bool
		userns  bool
		min     float64 // uptime seen inside at least
		max     float64
		wantErr error
	}{
		{name: "boottime ten days ahead", offsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 864000}}, min: 864000, max: 1e12},
		{name: "both clocks", offsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 864000}, "monotonic": {Secs: 5, Nanosecs: 7}}, min: 864000, max: 1e12},
		{name: "no offsets", min: 0, max: 1e12},
		{name: "offsets in a new user namespace", userns: true, offsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 864000}}, min: 864000, max: 1e12},
		{name: "offsets without a time namespace", noNS: true, offsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "unknown clock", offsets: map[string]specs.LinuxTimeOffset{"realtime": {Secs: 1}}, wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time; echo pid=$$")
			if !tc.noNS {
				spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
			}
			if tc.userns {
				spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
				m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 300000, Size: 65536}}
				spec.Linux.UIDMappings, spec.Linux.GIDMappings = m, m
				spec.Mounts = withoutDest(spec.Mounts, "/sys", "/sys/fs/cgroup")
				must(t, os.Chown(root, 300000, 300000))
				must(t, os.Chmod(e.dir, 0o755))
				must(t, os.Chmod(filepath.Dir(e.dir), 0o755))
				defer os.Chown(root, 0, 0)
			}
			spec.Linux.TimeOffsets = tc.offsets
			out, st, err := e.run("timens", spec)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			if st.ExitCode() != 0 || !strings.Contains(out, "pid=1\n") {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			up, err := strconv.ParseFloat(strings.Fields(out)[0], 64)
			must(t, err)
			if up < tc.min || up > tc.max {
				t.Errorf("uptime inside %v, want in [%v, %v]", up, tc.min, tc.max)
			}
			self, _ := os.Readlink("/proc/self/ns/time")
			if strings.Contains(out, self) {
				t.Errorf("container in the host's time namespace %s: %s", self, out)
			}
		})
	}
}

// The console size of process.consoleSize is the pty's window size.
func TestConsoleSize(t *testing.T) { bothInits(t, testConsoleSize) }

func testConsoleSize(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "stty", "tty")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec := baseSpec(root, "sh", "-c", "stty size; tty")
	spec.Process.Terminal = true
	spec.Process.ConsoleSize = &specs.Box{Height: 33, Width: 111}
	spec.Linux.CgroupsPath = e.cg + "/consize"
	c, err := e.rt.Create(ctx, "consize", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "consize", true)
	defer c.Console.Close()
	must(t, e.rt.Start(ctx, "consize"))
	_ = c.Console.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(out), "/dev/pts/") {
		n, err := c.Console.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	_, err = c.Wait()
	must(t, err)
	if !strings.Contains(string(out), "33 111") || !strings.Contains(string(out), "/dev/pts/0") {
		t.Fatalf("console output %q, want size 33 111 on /dev/pts/0", out)
	}
	must(t, e.rt.Delete(ctx, "consize", false))
}

// Each of the five hook kinds runs once, where the spec says, with the
// container's state on its stdin.
func TestHooksStateOnStdin(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := filepath.Join(e.dir, "hooks")
	must(t, os.Mkdir(out, 0o755))
	hostHook := func(name string) specs.Hook {
		// Runs in the runtime's namespaces: stdin to a host file, and the
		// mount namespace it runs in.
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + out + "/" + name + "; readlink /proc/self/ns/mnt > " + out + "/" + name + ".mnt"}}
	}
	// startContainer and createContainer run in the container's mount
	// namespace: they write into a bind of the host dir.
	ctrHook := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > /hooks/" + name + "; readlink /proc/self/ns/mnt > /hooks/" + name + ".mnt"}}
	}
	spec := baseSpec(root, "sh", "-c", "touch /hooks/running; sleep 100")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/hooks", Type: "bind", Source: out, Options: []string{"rbind", "rw"}})
	spec.Hooks = &specs.Hooks{
		CreateRuntime:   []specs.Hook{hostHook("createRuntime")},
		CreateContainer: []specs.Hook{hostHook("createContainer")}, // before pivot_root: host paths
		StartContainer:  []specs.Hook{ctrHook("startContainer")},
		Poststart:       []specs.Hook{hostHook("poststart")},
		Poststop:        []specs.Hook{hostHook("poststop")},
	}
	spec.Linux.CgroupsPath = e.cg + "/hooks"
	c, err := e.rt.Create(ctx, "hooks", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "hooks", true)
	must(t, e.rt.Start(ctx, "hooks"))
	waitFile(t, filepath.Join(out, "running"))
	ctrMnt, _ := os.Readlink("/proc/" + strconv.Itoa(c.Pid) + "/ns/mnt")
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	must(t, e.rt.Delete(ctx, "hooks", true))
	_, _ = c.Wait()
	tests := []struct {
		name, status, mnt string
	}{
		{"createRuntime", "created", hostMnt},
		{"createContainer", "created", ctrMnt},
		{"startContainer", "created", ctrMnt}, // before the user's process (runc)
		{"poststart", "running", hostMnt},
		{"poststop", "stopped", hostMnt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(out, tc.name))
			if err != nil {
				t.Fatalf("hook did not run: %v", err)
			}
			var st specs.State
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("state on stdin %q: %v", b, err)
			}
			if st.ID != "hooks" || st.Version == "" || string(st.Status) != tc.status {
				t.Errorf("state %+v, want id hooks, status %s", st, tc.status)
			}
			if tc.status != "stopped" && st.Pid != c.Pid && tc.name != "startContainer" {
				t.Errorf("state pid %d, want the init %d", st.Pid, c.Pid)
			}
			mnt, _ := os.ReadFile(filepath.Join(out, tc.name+".mnt"))
			if strings.TrimSpace(string(mnt)) != tc.mnt {
				t.Errorf("ran in mount namespace %s, want %s", mnt, tc.mnt)
			}
		})
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	t.Fatalf("%s never appeared", p)
}

// A realtime or deadline scheduler is applied where the kernel allows it;
// a refusal is a typed error naming the field, never a bare failure.
func TestSchedulerKernelDecides(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "awk")
	tests := []struct {
		name       string
		sched      specs.Scheduler
		wantPolicy string
		orErr      error
	}{
		// A fresh v1 cpu cgroup has no realtime budget (rt_runtime_us 0)
		// when the kernel has RT group scheduling: then EPERM.
		{name: "SCHED_FIFO 10", sched: specs.Scheduler{Policy: specs.SchedFIFO, Priority: 10}, wantPolicy: "policy=1 rtprio=10", orErr: errdefs.ErrPermissionDenied},
		{name: "SCHED_RR 5 reset on fork", sched: specs.Scheduler{Policy: specs.SchedRR, Priority: 5, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}},
			wantPolicy: "policy=2 rtprio=5", orErr: errdefs.ErrPermissionDenied},
		{name: "SCHED_DEADLINE runtime above deadline", sched: specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 2000000, Deadline: 1000000, Period: 1000000},
			orErr: errdefs.ErrInvalidArgument},
		{name: "SCHED_OTHER with a priority", sched: specs.Scheduler{Policy: specs.SchedOther, Priority: 5}, orErr: errdefs.ErrInvalidArgument},
		{name: "unknown flag", sched: specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{"SCHED_FLAG_NOPE"}}, orErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "awk", `{print "policy=" $41 " rtprio=" $40}`, "/proc/self/stat")
			sc := tc.sched
			spec.Process.Scheduler = &sc
			out, _, err := e.run("sched", spec)
			if err != nil {
				if !errors.Is(err, tc.orErr) {
					t.Fatalf("err %v, want %v", err, tc.orErr)
				}
				var pe *oci.PrivilegeError
				if errors.Is(err, errdefs.ErrPermissionDenied) && (!errors.As(err, &pe) || pe.Field != "process.scheduler") {
					t.Errorf("err %v does not name process.scheduler", err)
				}
				e.assertClean(t, "sched")
				return
			}
			if tc.wantPolicy == "" || !strings.Contains(out, tc.wantPolicy) {
				t.Errorf("output %q, want %q (or %v)", out, tc.wantPolicy, tc.orErr)
			}
		})
	}
}

// A mount of type cgroup2 (what a spec written for a pure v2 node asks)
// gives the container its own cgroup on this host's layout too, read-only,
// with and without a cgroup namespace.
func TestCgroup2TypeMount(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	for _, cgns := range []bool{true, false} {
		t.Run("cgroupns="+strconv.FormatBool(cgns), func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", "grep ' /sys/fs/cgroup' /proc/self/mountinfo; ls /sys/fs/cgroup/unified; echo CG; cat /proc/self/cgroup; mkdir /sys/fs/cgroup/unified/x 2>&1; "+
				"for d in /sys/fs/cgroup/*; do grep -q \" $d \" /proc/self/mountinfo || echo NOTMOUNTED $d; done; true")
			spec.Mounts = withoutDest(spec.Mounts, "/sys/fs/cgroup")
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup2",
				Options: []string{"nosuid", "noexec", "nodev", "ro"}})
			if !cgns {
				var ns []specs.LinuxNamespace
				for _, n := range spec.Linux.Namespaces {
					if n.Type != specs.CgroupNamespace {
						ns = append(ns, n)
					}
				}
				spec.Linux.Namespaces = ns
			}
			out, st, err := e.run("cg2", spec)
			must(t, err)
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			for _, w := range []string{" - cgroup2 ", "cgroup.procs", "Read-only file system"} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			// Every hierarchy is there (without a cgroup namespace the
			// unified and named ones were left empty directories).
			if strings.Contains(out, "NOTMOUNTED") {
				t.Errorf("hierarchies not mounted:\n%s", out)
			}
			_, cg, _ := strings.Cut(out, "CG\n")
			if line := strings.Split(cg, "\n")[0]; cgns != strings.HasSuffix(line, ":/") {
				t.Errorf("/proc/self/cgroup %q with cgroupns=%v", line, cgns)
			}
		})
	}
}
