package spec_test

// Security contexts against the real kernel: a CRI config goes through
// spec.Generate and the executor, and the container reports what it got
// (/proc/self/status, a masked path, a read-only root, a forbidden syscall,
// a uid's file access). Root only, as the executor's own tests.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/oci"
	_ "github.com/cri-server/cri-server/oci/nsenter"
	"github.com/cri-server/cri-server/oci/spec"
)

// TestMain lets the runtime re-execute this test binary as the container
// init, as cmd/cri-server does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		oci.InitMain()
	}
	os.Exit(m.Run())
}

var applets = []string{"sh", "cat", "grep", "id", "touch", "unshare", "hostname", "chmod", "echo", "brctl", "test", "[", "true", "mknod", "dd"}

// secRootfs is a busybox rootfs with a user app (1000) in group staff (50),
// a root-only file and a file of app's.
func secRootfs(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	out, err := exec.Command("ldd", "/bin/busybox").Output()
	must(t, err)
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			copyFile(t, f, filepath.Join(root, f), 0o755)
		}
	}
	copyFile(t, "/bin/busybox", filepath.Join(root, "bin/busybox"), 0o755)
	for _, a := range applets {
		// Hard links, as in the busybox image: a masked symlink would mask
		// its target.
		must(t, os.Link(filepath.Join(root, "bin/busybox"), filepath.Join(root, "bin", a)))
	}
	must(t, os.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:app\napp:x:1000:\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "etc/root-only"), []byte("secret\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(root, "etc/app-only"), []byte("app's\n"), 0o600))
	must(t, os.Chown(filepath.Join(root, "etc/app-only"), 1000, 1000))
	return root
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	must(t, os.WriteFile(dst, b, mode))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type secEnv struct {
	t      *testing.T
	dir    string
	rootfs string
	rt     *oci.Runtime
	cg     string
	n      int
}

func newSecEnv(t *testing.T) *secEnv {
	rootfs := secRootfs(t)
	dir := t.TempDir()
	rt, err := oci.New(oci.Config{StateDir: filepath.Join(dir, "state")})
	must(t, err)
	e := &secEnv{t: t, dir: dir, rootfs: rootfs, rt: rt,
		cg: fmt.Sprintf("/cri-server-sectest-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { e.checkLeaks(); rt.Close() })
	return e
}

// checkLeaks: no cgroup, mount, child process or container state left.
func (e *secEnv) checkLeaks() {
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if err := os.Remove(filepath.Join(h, e.cg)); err != nil && !os.IsNotExist(err) {
			e.t.Errorf("cgroup leaked under %s%s: %v", h, e.cg, err)
		}
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), e.dir) || strings.Contains(string(b), e.rootfs) {
		e.t.Errorf("mount leaked under %s or %s", e.dir, e.rootfs)
	}
	if ids, _ := e.rt.List(); len(ids) > 0 {
		e.t.Errorf("containers left: %v", ids)
	}
	ents, _ := os.ReadDir("/proc")
	me := strconv.Itoa(os.Getpid())
	for _, d := range ents {
		st, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if f := strings.Fields(s[i+1:]); len(f) > 2 && f[1] == me {
			e.t.Errorf("child process left: %s", s[:i+1])
		}
	}
}

// run generates the spec from c (a pod config from sb, privileged or not)
// and runs the container to its end, returning its output.
func (e *secEnv) run(c *runtime.ContainerConfig, sb *runtime.LinuxSandboxSecurityContext) (string, error) {
	e.n++
	id := fmt.Sprintf("sec%d", e.n)
	c.Metadata = &runtime.ContainerMetadata{Name: id}
	s, err := spec.Generate(spec.Input{
		ID: id, Config: c, SandboxID: "pod",
		Sandbox: &runtime.PodSandboxConfig{Hostname: "pod", Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: sb}},
		Image:        imagespec.ImageConfig{Env: []string{"PATH=/bin"}},
		Rootfs:       e.rootfs,
		CgroupParent: e.cg,
	})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, w, err := os.Pipe()
	must(e.t, err)
	defer r.Close()
	ctr, err := e.rt.Create(ctx, id, s, oci.IO{Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		return "", err
	}
	defer e.rt.Delete(ctx, id, true)
	must(e.t, e.rt.Start(ctx, id))
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { out.ReadFrom(r); close(done) }()
	if _, err := ctr.Wait(); err != nil {
		e.t.Fatal(err)
	}
	<-done
	must(e.t, e.rt.Delete(ctx, id, false))
	return out.String(), nil
}

// probe prints the status fields, then runs each check, printing its name
// and ok or fail plus the first line of its output.
const probe = `grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status
check() { n=$1; shift; if out=$("$@" 2>&1); then echo "$n=ok"; else echo "$n=fail ${out%%
*}"; fi; }
check uid id -u
check groups id -G
check keys_masked test -c /proc/keys
check firmware_empty sh -c '[ -z "$(echo /sys/firmware/*)" ] || [ "$(echo /sys/firmware/*)" = "/sys/firmware/*" ]'
check proc_sys_write sh -c 'echo 1 > /proc/sys/kernel/ns_last_pid'
check sys_rw grep -q '^sysfs /sys sysfs rw' /proc/mounts
check root_write touch /written
check tmp_write touch /tmp/written
check root_only cat /etc/root-only
check app_only cat /etc/app-only
check masked_file grep -q staff /etc/group
check unshare_user unshare -U true
check chmod chmod 700 /tmp
check sethostname hostname other
check addbr brctl addbr br-sec
check host_kmsg test -c /dev/kmsg
check dev_cgroup sh -c 'n=/tmp/kmsg$$; mknod $n c 1 11 && dd if=$n of=/dev/null bs=1 count=0'
`

// fields parses "CapBnd:\t000..." and "name=ok" lines.
func fields(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":\t"); ok {
			m[k] = strings.TrimSpace(v)
		} else if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// capMask is the /proc/self/status hex of a list of capability numbers.
func capMask(nums ...int) string {
	var m uint64
	for _, n := range nums {
		m |= 1 << n
	}
	return fmt.Sprintf("%016x", m)
}

// allCapsMask is what this test process holds: privileged and ALL grant
// the runtime's own capabilities.
func allCapsMask() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapPrm:\t"); ok {
			return v
		}
	}
	return "?"
}

// The 14 default capabilities, by number: CHOWN 0, DAC_OVERRIDE 1, FOWNER 3,
// FSETID 4, KILL 5, SETGID 6, SETUID 7, SETPCAP 8, NET_BIND_SERVICE 10,
// NET_RAW 13, SYS_CHROOT 18, MKNOD 27, AUDIT_WRITE 29, SETFCAP 31.
var defaultCaps = capMask(0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31)

func TestSecurityContextInContainer(t *testing.T) {
	e := newSecEnv(t)
	chmodProfile := filepath.Join(t.TempDir(), "block-chmod.json")
	must(t, os.WriteFile(chmodProfile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat","fchmodat2"],"action":"SCMP_ACT_ERRNO"}]}`), 0o600))
	privPod := &runtime.LinuxSandboxSecurityContext{Privileged: true}
	for _, tc := range []struct {
		name string
		sc   *runtime.LinuxContainerSecurityContext
		pod  *runtime.LinuxSandboxSecurityContext
		want map[string]string // exact values; a trailing * matches any rest ("fail*")
	}{
		{name: "defaults", sc: nil, want: map[string]string{
			"CapBnd": defaultCaps, "CapEff": defaultCaps, "Seccomp": "0", "NoNewPrivs": "0", "uid": "ok",
			"keys_masked": "ok", "firmware_empty": "ok", "proc_sys_write": "fail*", "sys_rw": "fail*",
			"root_write": "ok", "root_only": "ok", "unshare_user": "ok", "chmod": "ok",
			"sethostname": "fail*", "addbr": "fail*", "host_kmsg": "fail*",
			"dev_cgroup": "fail dd: can't open '/tmp/kmsg*"}},
		{name: "no_new_privs", sc: &runtime.LinuxContainerSecurityContext{NoNewPrivs: true},
			want: map[string]string{"NoNewPrivs": "1", "CapBnd": defaultCaps}},
		{name: "seccomp RuntimeDefault forbids unshare", sc: &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{}},
			want: map[string]string{"Seccomp": "2", "unshare_user": "fail*", "chmod": "ok", "uid": "ok"}},
		{name: "seccomp RuntimeDefault with no_new_privs", sc: &runtime.LinuxContainerSecurityContext{NoNewPrivs: true, Seccomp: &runtime.SecurityProfile{}},
			want: map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "unshare_user": "fail*", "uid": "ok"}},
		{name: "seccomp Localhost blocks chmod", sc: &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
			ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: chmodProfile}},
			want: map[string]string{"Seccomp": "2", "chmod": "fail chmod: /tmp: Operation not permitted", "unshare_user": "ok"}},
		{name: "seccomp Unconfined with SYS_ADMIN sets the hostname", sc: &runtime.LinuxContainerSecurityContext{
			Seccomp:      &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined},
			Capabilities: &runtime.Capability{AddCapabilities: []string{"SYS_ADMIN"}}},
			want: map[string]string{"Seccomp": "0", "sethostname": "ok", "CapBnd": capMask(0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 21, 27, 29, 31)}},
		{name: "add NET_ADMIN", sc: &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}}},
			want: map[string]string{"addbr": "ok", "CapEff": capMask(0, 1, 3, 4, 5, 6, 7, 8, 10, 12, 13, 18, 27, 29, 31)}},
		{name: "drop NET_RAW", sc: &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{DropCapabilities: []string{"NET_RAW"}}},
			want: map[string]string{"CapBnd": capMask(0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 27, 29, 31)}},
		{name: "drop ALL", sc: &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"}}},
			want: map[string]string{"CapBnd": capMask(), "CapEff": capMask(), "app_only": "fail*", "root_only": "ok"}},
		{name: "add ALL", sc: &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"ALL"}}},
			want: map[string]string{"CapBnd": allCapsMask(), "Seccomp": "0", "keys_masked": "ok", "addbr": "ok"}},
		{name: "readonly rootfs", sc: &runtime.LinuxContainerSecurityContext{ReadonlyRootfs: true},
			want: map[string]string{"root_write": "fail touch: /written: Read-only file system", "uid": "ok"}},
		{name: "masked and readonly paths from the kubelet", sc: &runtime.LinuxContainerSecurityContext{
			MaskedPaths: []string{"/etc/group"}, ReadonlyPaths: []string{"/tmp"}},
			want: map[string]string{"masked_file": "fail*", "tmp_write": "fail touch: /tmp/written: Read-only file system",
				"keys_masked": "fail*", "root_write": "ok"}},
		{name: "run as uid 1000 with supplemental groups", sc: &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234}},
			want: map[string]string{"uid": "ok", "groups": "ok", "CapBnd": defaultCaps, "CapEff": capMask(),
				"root_only": "fail cat: can't open '/etc/root-only': Permission denied", "app_only": "ok", "root_write": "fail*"}},
		{name: "run as app by name", sc: &runtime.LinuxContainerSecurityContext{RunAsUsername: "app"},
			want: map[string]string{"root_only": "fail*", "app_only": "ok"}},
		{name: "privileged", pod: privPod, sc: &runtime.LinuxContainerSecurityContext{Privileged: true,
			Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: chmodProfile}},
			want: map[string]string{"CapBnd": allCapsMask(), "CapEff": allCapsMask(), "Seccomp": "0", "keys_masked": "fail*",
				"proc_sys_write": "ok", "sys_rw": "ok", "chmod": "ok", "sethostname": "ok", "addbr": "ok", "host_kmsg": "ok", "dev_cgroup": "ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.run(&runtime.ContainerConfig{Command: []string{"/bin/sh", "-c", probe},
				Linux: &runtime.LinuxContainerConfig{SecurityContext: tc.sc}}, tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			got := fields(out)
			for k, want := range tc.want {
				g := got[k]
				if p, ok := strings.CutSuffix(want, "*"); ok {
					if !strings.HasPrefix(g, p) {
						t.Errorf("%s = %q, want %q", k, g, want)
					}
					continue
				}
				if g != want {
					t.Errorf("%s = %q, want %q", k, g, want)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// Creates reuse compiled seccomp programs: the default profile costs
// libseccomp ~18 ms, and each container is created by a fresh monitor.
func TestSeccompCompiledOnce(t *testing.T) {
	e := newSecEnv(t)
	c := func() *runtime.ContainerConfig {
		return &runtime.ContainerConfig{Command: []string{"true"}, Linux: &runtime.LinuxContainerConfig{
			SecurityContext: &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{}}}}
	}
	for i := 0; i < 2; i++ {
		if _, err := e.run(c(), nil); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(e.dir, "state", ".seccomp"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("seccomp cache: %d entries, %v; want one program for two containers", len(ents), err)
	}
}

// The ids the container's process really has: id(1) inside, Merge and Strict.
func TestSupplementalGroupsInContainer(t *testing.T) {
	e := newSecEnv(t)
	for _, tc := range []struct {
		name   string
		policy runtime.SupplementalGroupsPolicy
		want   string
	}{
		{"Merge adds the image's groups", runtime.SupplementalGroupsPolicy_Merge, "1000 50 1234"},
		{"Strict does not", runtime.SupplementalGroupsPolicy_Strict, "1000 1234"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.run(&runtime.ContainerConfig{Command: []string{"id", "-G"},
				Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
					RunAsUser: &runtime.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234}, SupplementalGroupsPolicy: tc.policy}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(out) != tc.want {
				t.Fatalf("id -G = %q, want %q", out, tc.want)
			}
		})
	}
}

// A bad profile fails at create with a typed error, and nothing is left.
func TestBadProfileFailsCreate(t *testing.T) {
	e := newSecEnv(t)
	bad := filepath.Join(t.TempDir(), "bad.json")
	must(t, os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_NOPE"}]}`), 0o600))
	_, err := e.run(&runtime.ContainerConfig{Command: []string{"true"}, Linux: &runtime.LinuxContainerConfig{
		SecurityContext: &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
			ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: bad}}}}, nil)
	if err == nil || !regexp.MustCompile(`SCMP_ACT_NOPE`).MatchString(err.Error()) {
		t.Fatalf("err %v, want one naming the bad action", err)
	}
}
