package oci_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

// Start returns once the user's process is exec'd, and poststart hooks run
// after that (runtime-spec lifecycle step 7-8; runtime-tools' poststart
// test): a startContainer hook that sleeps holds the init before its exec,
// so a Start that returned at the barrier would see the init binary still.
func TestStartReturnsAfterExec(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	stateFile := filepath.Join(e.dir, "poststart.json")
	spec := baseSpec(root, "sleep", "100")
	spec.Hooks = &specs.Hooks{
		StartContainer: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "0.3"}}},
		Poststart:      []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + stateFile}}},
	}
	spec.Linux.CgroupsPath = e.cg + "/startexec"
	c, err := e.rt.Create(ctx, "startexec", spec, oci.IO{})
	must(t, err)
	defer func() { e.rt.Delete(ctx, "startexec", true); c.Wait() }()
	must(t, e.rt.Start(ctx, "startexec"))

	self, err := os.Stat("/proc/self/exe")
	must(t, err)
	exe, err := os.Stat("/proc/" + strconv.Itoa(c.Pid) + "/exe")
	must(t, err)
	if os.SameFile(self, exe) {
		t.Fatal("Start returned while the init had not exec'd the user's process yet")
	}
	b, err := os.ReadFile(stateFile)
	must(t, err)
	var st specs.State
	must(t, json.Unmarshal(b, &st))
	if st.Status != specs.StateRunning || st.Pid != c.Pid || st.ID != "startexec" {
		t.Fatalf("poststart hook got state %+v, want running, pid %d", st, c.Pid)
	}
}

// A capability the runtime itself lacks (this machine's root has no
// CAP_SYS_RESOURCE) is refused at create with a typed error naming the
// field, as runc does, not by an init that dies after start; in the bounding
// set alone it is fine (dropping is all the bounding set does).
func TestCreateRefusesCapsNotHeld(t *testing.T) {
	missing := capNotHeld(t)
	tests := []struct {
		name    string
		caps    func(c *specs.LinuxCapabilities)
		wantErr string
	}{
		{"effective and permitted", func(c *specs.LinuxCapabilities) {
			c.Effective = append(c.Effective, missing)
			c.Permitted = append(c.Permitted, missing)
		}, "process.capabilities.effective: " + missing},
		{"inheritable", func(c *specs.LinuxCapabilities) {
			c.Inheritable = append(c.Inheritable, missing)
		}, "process.capabilities.inheritable: " + missing},
		{"bounding only", func(c *specs.LinuxCapabilities) {
			c.Bounding = append(c.Bounding, missing)
		}, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			root := busyboxRootfs(t, e.dir)
			spec := baseSpec(root, "true")
			caps := *spec.Process.Capabilities
			caps.Bounding = append([]string(nil), caps.Bounding...)
			caps.Effective = append([]string(nil), caps.Effective...)
			caps.Permitted = append([]string(nil), caps.Permitted...)
			tc.caps(&caps)
			spec.Process.Capabilities = &caps
			_, st, err := e.run(fmt.Sprintf("caps%d", i), spec)
			if tc.wantErr == "" {
				if err != nil || st.ExitCode() != 0 {
					t.Fatalf("run: %v, exit %d", err, st.ExitCode())
				}
				return
			}
			if !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(fmt.Sprint(err), tc.wantErr) {
				t.Fatalf("create: %v, want permission denied naming %q", err, tc.wantErr)
			}
		})
	}
}

// capNotHeld names a capability outside this process's permitted set.
func capNotHeld(t *testing.T) string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	must(t, unix.Capget(&hdr, &data[0]))
	held := uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	must(t, err)
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	must(t, err)
	for i, n := range oci.CapabilityNames() {
		if i <= last && held&(1<<uint(i)) == 0 {
			return n
		}
	}
	t.Skip("this process holds every capability: nothing to refuse")
	return ""
}

// A failed poststart or poststop hook is a warning: the hooks after it
// still run and the operation succeeds (runtime-spec lifecycle;
// runtime-tools' poststart_fail and poststop_fail). The create hooks get
// the state "created" (the environment is made, the program not run).
func TestHookFailuresAndStates(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	marks := filepath.Join(e.dir, "marks")
	mark := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "echo " + name + " >> " + marks}}
	}
	state := func(name string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > " + filepath.Join(e.dir, name+".json")}}
	}
	fail := specs.Hook{Path: "/bin/false", Args: []string{"false"}}
	spec := baseSpec(root, "sleep", "100")
	spec.Hooks = &specs.Hooks{
		Prestart:      []specs.Hook{state("prestart")}, //nolint:staticcheck // still written by older tools
		CreateRuntime: []specs.Hook{state("createRuntime")},
		Poststart:     []specs.Hook{fail, mark("poststart")},
		Poststop:      []specs.Hook{fail, mark("poststop")},
	}
	spec.Linux.CgroupsPath = e.cg + "/hookfail"
	c, err := e.rt.Create(ctx, "hookfail", spec, oci.IO{})
	must(t, err)
	defer func() { e.rt.Delete(ctx, "hookfail", true); c.Wait() }()
	if err := e.rt.Start(ctx, "hookfail"); err != nil {
		t.Fatalf("start with a failing poststart hook: %v", err)
	}
	if err := e.rt.Delete(ctx, "hookfail", true); err != nil {
		t.Fatalf("delete with a failing poststop hook: %v", err)
	}
	c.Wait()
	b, _ := os.ReadFile(marks)
	if got := strings.Join(strings.Fields(string(b)), ","); got != "poststart,poststop" {
		t.Errorf("hooks after the failed ones ran: %q, want poststart,poststop", got)
	}
	for _, h := range []string{"prestart", "createRuntime"} {
		b, err := os.ReadFile(filepath.Join(e.dir, h+".json"))
		must(t, err)
		var st specs.State
		must(t, json.Unmarshal(b, &st))
		if st.Status != specs.StateCreated || st.Pid != c.Pid || st.ID != "hookfail" {
			t.Errorf("%s hook got state %+v, want created, pid %d", h, st, c.Pid)
		}
	}
}

// A cgroupsPath whose parents did not exist (runtime-tools' relative
// "testdir/cgrouptest/container") leaves nothing once the container is
// deleted, though Delete's cgroup manager is not the one that made them.
func TestDeleteRemovesCgroupParentsItMade(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	spec := baseSpec(root, "true")
	spec.Linux.CgroupsPath = e.cg + "/p1/p2/ctr"
	c, err := e.rt.Create(ctx, "parents", spec, oci.IO{})
	must(t, err)
	must(t, e.rt.Start(ctx, "parents"))
	c.Wait()
	// Another runtime over the same state dir: the command line's delete.
	rt2, err := oci.New(oci.Config{StateDir: filepath.Join(e.dir, "state")})
	must(t, err)
	defer rt2.Close()
	must(t, rt2.Delete(ctx, "parents", false))
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hiers {
		if _, err := os.Stat(filepath.Join(h, e.cg)); err == nil {
			t.Errorf("cgroup parent left: %s", filepath.Join(h, e.cg))
		}
	}
}

// createRuntime hooks run in the runtime's namespaces, createContainer
// hooks in the container's (its mount namespace, before pivot_root), both
// with the container's state (runtime-spec config.md, POSIX hooks).
func TestCreateHooksNamespaces(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	ctx := context.Background()
	hook := func(name string) specs.Hook {
		out := filepath.Join(e.dir, name)
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c",
			"readlink /proc/self/ns/mnt > " + out + ".ns; cat > " + out + ".json"}}
	}
	spec := baseSpec(root, "sleep", "100")
	spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{hook("createRuntime")},
		CreateContainer: []specs.Hook{hook("createContainer")}}
	spec.Linux.CgroupsPath = e.cg + "/ccns"
	c, err := e.rt.Create(ctx, "ccns", spec, oci.IO{})
	must(t, err)
	defer func() { e.rt.Delete(ctx, "ccns", true); c.Wait() }()
	self, err := os.Readlink("/proc/self/ns/mnt")
	must(t, err)
	ctr, err := os.Readlink("/proc/" + strconv.Itoa(c.Pid) + "/ns/mnt")
	must(t, err)
	for _, tc := range []struct{ hook, wantNS string }{{"createRuntime", self}, {"createContainer", ctr}} {
		b, err := os.ReadFile(filepath.Join(e.dir, tc.hook+".ns"))
		must(t, err)
		if got := strings.TrimSpace(string(b)); got != tc.wantNS {
			t.Errorf("%s hook ran in mount namespace %s, want %s", tc.hook, got, tc.wantNS)
		}
		b, err = os.ReadFile(filepath.Join(e.dir, tc.hook+".json"))
		must(t, err)
		var st specs.State
		must(t, json.Unmarshal(b, &st))
		if st.Status != specs.StateCreated || st.Pid != c.Pid || st.ID != "ccns" {
			t.Errorf("%s hook got state %+v, want created, pid %d", tc.hook, st, c.Pid)
		}
	}
}
