package oci_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Each spec field as the process sees it from inside: the container runs a
// script and prints what /proc and the applets report. The env's leak check
// (mounts, cgroups, processes, state) runs after every case.
func TestSpecFieldsSeenInside(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "ionice", "stty", "awk", "sysctl", "umask")
	must(t, os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644))
	adj := 500
	umask := uint32(0o027)
	tests := []struct {
		name   string
		script string
		mod    func(*specs.Spec)
		want   []string
		absent []string
	}{
		{name: "domainname", script: "cat /proc/sys/kernel/domainname",
			mod: func(s *specs.Spec) { s.Domainname = "dom.example" }, want: []string{"dom.example"}},
		{name: "umask", script: "umask",
			mod: func(s *specs.Spec) { s.Process.User.Umask = &umask }, want: []string{"0027"}},
		{name: "default umask 0022", script: "umask", want: []string{"0022"}},
		{name: "uid, gid and additionalGids", script: "grep -E '^(Uid|Gid|Groups):' /proc/self/status",
			mod: func(s *specs.Spec) {
				s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{5, 7}}
			}, want: []string{"Uid:\t1000\t1000\t1000\t1000", "Gid:\t1001\t1001\t1001\t1001", "Groups:\t5 7"}},
		{name: "env", script: "env", mod: func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "FOO=bar=baz") },
			want: []string{"FOO=bar=baz", "PATH=/bin", "HOME=/"}},
		{name: "cwd created? no: an existing dir", script: "pwd", mod: func(s *specs.Spec) { s.Process.Cwd = "/etc" }, want: []string{"/etc"}},
		{name: "rlimits soft and hard", script: "grep 'Max open files' /proc/self/limits",
			mod: func(s *specs.Spec) {
				s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}}
			}, want: []string{"321                  654"}},
		{name: "oomScoreAdj above the caller's", script: "cat /proc/self/oom_score_adj",
			mod: func(s *specs.Spec) { s.Process.OOMScoreAdj = &adj }, want: []string{"500"}},
		{name: "noNewPrivileges on", script: "grep NoNewPrivs /proc/self/status", want: []string{"NoNewPrivs:\t1"}},
		{name: "noNewPrivileges off", script: "grep NoNewPrivs /proc/self/status",
			mod: func(s *specs.Spec) { s.Process.NoNewPrivileges = false }, want: []string{"NoNewPrivs:\t0"}},
		{name: "five capability sets", script: "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
			mod: func(s *specs.Spec) {
				// uid 1000 keeps CAP_NET_BIND_SERVICE (bit 10) only through the ambient set.
				s.Process.User = specs.User{UID: 1000, GID: 1000}
				c := []string{"CAP_NET_BIND_SERVICE"}
				s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: append(c, "CAP_KILL"), Effective: c,
					Permitted: c, Inheritable: c, Ambient: c}
			}, want: []string{"CapInh:\t0000000000000400", "CapPrm:\t0000000000000400", "CapEff:\t0000000000000400",
				"CapBnd:\t0000000000000420", "CapAmb:\t0000000000000400"}},
		{name: "ioPriority", script: "ionice -p $$",
			mod: func(s *specs.Spec) {
				s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 0}
			}, want: []string{"idle"}},
		{name: "sysctl in the container's netns", script: "cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/kernel/msgmax",
			mod: func(s *specs.Spec) {
				s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.msgmax": "4242"}
			}, want: []string{"1\n4242"}},
		{name: "readonly root", script: "touch /x 2>&1; touch /tmp/y 2>&1; true",
			mod: func(s *specs.Spec) { s.Root.Readonly = true }, want: []string{"Read-only file system"}},
		{name: "masked dir is empty and read-only", script: "ls -A /sys/firmware | wc -l; touch /sys/firmware/x 2>&1; true",
			want: []string{"0\n", "Read-only file system"}},
		{name: "masked file reads empty", script: "wc -c < /proc/timer_list", want: []string{"0"}},
		{name: "readonlyPaths", script: "{ echo x > /proc/sys/kernel/domainname; } 2>&1; true", want: []string{"Read-only file system"}},
		{name: "default devices", script: "ls -l /dev /dev/pts | grep -v '^total'; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; head -c 4 /dev/urandom | wc -c; { echo x > /dev/full; } 2>&1; true",
			want: []string{" null", " zero", " full", " random", " urandom", " tty", "ptmx", "shm", "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx", "4\n", "No space left on device"}},
		{name: "linux.devices with mode and owner", script: "stat -c '%F %t:%T %a %u:%g' /dev/mynull; echo hi > /dev/mynull && echo wrote",
			mod: func(s *specs.Spec) {
				mode := os.FileMode(0o640)
				uid, gid := uint32(7), uint32(8)
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mynull", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &uid, GID: &gid}}
				s.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
			}, want: []string{"character special file 1:3 640 7:8", "wrote"}},
		{name: "filesystems of the default mounts", script: "grep -E ' /(proc|sys|dev|dev/pts|dev/shm|dev/mqueue) ' /proc/self/mountinfo",
			want: []string{" /proc rw", "- proc ", " /sys ro", "- sysfs ", " /dev/pts rw", "- devpts ", "ptmxmode=666", " /dev/shm rw", " /dev/mqueue rw", "- mqueue "}},
		{name: "hostname", script: "hostname; cat /proc/sys/kernel/hostname", want: []string{"ctr\nctr"}},
		// stat's fields 19 and 41 (comm has no space here): nice and policy.
		{name: "scheduler SCHED_BATCH nice 7", script: "awk '{print \"nice=\" $19 \" policy=\" $41}' /proc/self/stat",
			mod:  func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7} },
			want: []string{"nice=7 policy=3"}},
		{name: "scheduler SCHED_IDLE", script: "awk '{print \"policy=\" $41}' /proc/self/stat",
			mod:  func(s *specs.Spec) { s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedIdle} },
			want: []string{"policy=5"}},
		{name: "no scheduler: SCHED_OTHER nice 0", script: "awk '{print \"nice=\" $19 \" policy=\" $41}' /proc/self/stat",
			want: []string{"nice=0 policy=0"}},
		{name: "personality", script: "uname -m",
			mod: func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, want: []string{"i686"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "sh", "-c", tc.script)
			if tc.mod != nil {
				tc.mod(spec)
			}
			out, st, err := e.run("fields", spec)
			must(t, err)
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}
