package oci_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// A second container joining each namespace of a first by path is in that
// very namespace (pid, ipc, uts, net, cgroup, time), as a pod's
// containers join its sandbox's.
func TestJoinEveryNamespaceByPath(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	holder := baseSpec(root, "sleep", "100")
	holder.Linux.Namespaces = append(holder.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	h := e.start(t, "holder", holder)
	waitExeced(t, h.c.Pid, "sleep")
	tests := []struct {
		typ  specs.LinuxNamespaceType
		proc string
	}{
		{specs.PIDNamespace, "pid"}, {specs.IPCNamespace, "ipc"}, {specs.UTSNamespace, "uts"},
		{specs.NetworkNamespace, "net"}, {specs.CgroupNamespace, "cgroup"}, {specs.TimeNamespace, "time"},
		// mnt: TestJoinMountNamespaceByPath (the rootfs path must exist
		// in the joined namespace, which another container's pivot hides).
	}
	for _, tc := range tests {
		t.Run(string(tc.typ), func(t *testing.T) {
			path := "/proc/" + strconv.Itoa(h.c.Pid) + "/ns/" + tc.proc
			want, err := os.Readlink(path)
			must(t, err)
			spec := baseSpec(root, "readlink", "/proc/self/ns/"+tc.proc)
			found := false
			for i, ns := range spec.Linux.Namespaces {
				if ns.Type == tc.typ {
					spec.Linux.Namespaces[i].Path = path
					found = true
				}
			}
			if !found {
				spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: tc.typ, Path: path})
			}
			out, st, err := e.run("joiner", spec)
			must(t, err)
			if st.ExitCode() != 0 || strings.TrimSpace(out) != want {
				t.Errorf("exit %d, in %q, want %q", st.ExitCode(), strings.TrimSpace(out), want)
			}
		})
	}
	t.Run("a path that is not a namespace of that type", func(t *testing.T) {
		spec := baseSpec(root, "true")
		setNS(spec, specs.NetworkNamespace, "/proc/"+strconv.Itoa(h.c.Pid)+"/ns/ipc")
		if _, _, err := e.run("joiner", spec); err == nil {
			t.Fatal("joined an ipc namespace as a network one")
		}
		e.assertGone(t, "joiner")
	})
}

// Mount flags as the kernel applies them: what mountinfo shows and what a
// process can do under them.
func TestMountFlags(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "mknod", "cp", "chmod")
	tests := []struct {
		name   string
		opts   []string
		script string
		want   []string
	}{
		{name: "noexec", opts: []string{"noexec"}, script: "cp /bin/busybox /m/busybox; /m/busybox true 2>&1; true", want: []string{"noexec", "Permission denied"}},
		{name: "exec", opts: []string{"exec"}, script: "cp /bin/busybox /m/busybox; /m/busybox true && echo ran", want: []string{"ran"}},
		{name: "nodev", opts: []string{"nodev"}, script: "mknod /m/null c 1 3; { echo x > /m/null; } 2>&1; true", want: []string{"nodev", "Permission denied"}},
		{name: "nosuid", opts: []string{"nosuid"}, script: "true", want: []string{"nosuid"}},
		{name: "ro", opts: []string{"ro"}, script: "{ touch /m/f; } 2>&1; true", want: []string{" ro,", "Read-only file system"}},
		{name: "noatime", opts: []string{"noatime"}, script: "true", want: []string{"noatime"}},
		{name: "size and mode data", opts: []string{"size=1m", "mode=700"}, script: "stat -c %a /m", want: []string{"size=1024k", "mode=700", "700\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", "grep ' /m ' /proc/self/mountinfo; "+tc.script)
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/m", Type: "tmpfs", Source: "tmpfs", Options: tc.opts})
			addCaps(spec, "CAP_MKNOD")
			out, st, err := e.run("mflags", spec)
			must(t, err)
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// An exec with a terminal gets its own pty with the size asked for.
func TestExecTerminal(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "stty", "tty")
	ctx := context.Background()
	s := e.start(t, "extty", baseSpec(root, "sleep", "100"))
	waitExeced(t, s.c.Pid, "sleep")
	p, err := e.rt.Exec(ctx, "extty", &specs.Process{Args: []string{"sh", "-c", "tty; stty size; test -t 0 && echo stdin-tty"},
		Env: []string{"PATH=/bin"}, Cwd: "/", Terminal: true, ConsoleSize: &specs.Box{Height: 21, Width: 77}}, oci.IO{})
	must(t, err)
	if p.Console == nil {
		t.Fatal("no console for an exec with a terminal")
	}
	defer p.Console.Close()
	_ = p.Console.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(out), "stdin-tty") {
		n, err := p.Console.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	st, err := p.Wait()
	must(t, err)
	for _, w := range []string{"/dev/pts/", "21 77", "stdin-tty"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("exec console output %q lacks %q (exit %d)", out, w, st.ExitCode())
		}
	}
}

// LSM settings this kernel cannot honour are refused by name, never
// ignored.
func TestLSMAskedWithoutLSM(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	tests := []struct {
		name  string
		mod   func(*specs.Spec)
		field string
		class error
		skip  func() bool
	}{
		{name: "SELinux process label", mod: func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" },
			field: "process.selinuxLabel", class: errdefs.ErrInvalidArgument, skip: selinuxOn},
		{name: "SELinux mount label", mod: func(s *specs.Spec) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0" },
			field: "linux.mountLabel", class: errdefs.ErrInvalidArgument, skip: selinuxOn},
		{name: "AppArmor profile not loaded", mod: func(s *specs.Spec) { s.Process.ApparmorProfile = "cri-server-test-no-such-profile" },
			field: "apparmor", class: errdefs.ErrInvalidArgument},
		{name: "intelRdt", mod: func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} },
			field: "linux.intelRdt", class: errdefs.ErrNotImplemented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != nil && tc.skip() {
				t.Skip("this kernel has it")
			}
			spec := baseSpec(root, "true")
			tc.mod(spec)
			_, _, err := e.run("lsm", spec)
			if !errors.Is(err, tc.class) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.field)) {
				t.Fatalf("err %v, want %v naming %s", err, tc.class, tc.field)
			}
			e.assertClean(t, "lsm")
		})
	}
}

func selinuxOn() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// Names set without a UTS namespace would be the host's: refused by name.
func TestNamesNeedUTSNamespace(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	tests := []struct {
		name, field string
		mod         func(*specs.Spec)
	}{
		{"hostname", "hostname", func(s *specs.Spec) {}},
		{"domainname", "domainname", func(s *specs.Spec) { s.Hostname, s.Domainname = "", "dom" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "true")
			tc.mod(spec)
			var keep []specs.LinuxNamespace
			for _, ns := range spec.Linux.Namespaces {
				if ns.Type != specs.UTSNamespace {
					keep = append(keep, ns)
				}
			}
			spec.Linux.Namespaces = keep
			_, _, err := e.run("names", spec)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err %v, want invalid argument naming %s", err, tc.field)
			}
			e.assertClean(t, "names")
		})
	}
	// Without names the host's UTS namespace is fine.
	spec := baseSpec(root, "true")
	spec.Hostname = ""
	var keep []specs.LinuxNamespace
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type != specs.UTSNamespace {
			keep = append(keep, ns)
		}
	}
	spec.Linux.Namespaces = keep
	if _, st, err := e.run("names", spec); err != nil || st.ExitCode() != 0 {
		t.Fatalf("no names, host UTS: %v %+v", err, st)
	}
}
