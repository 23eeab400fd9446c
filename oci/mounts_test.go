package oci_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// sharedDir makes dir a mount point of its own in a peer group of its own
// (what the kubelet's volume dirs are with mount propagation), and undoes it
// with everything mounted under it when the test ends.
func sharedDir(t *testing.T, dir string, prop uintptr) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	must(t, unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""))
	t.Cleanup(func() { must(t, unix.Unmount(dir, unix.MNT_DETACH)) })
	must(t, unix.Mount("", dir, "", prop|unix.MS_REC, ""))
}

func withApplets(t *testing.T, root string, names ...string) {
	for _, n := range names {
		must(t, os.Symlink("busybox", filepath.Join(root, "bin", n)))
	}
}

// A volume's propagation as a user sees it: a mount made on the host after
// the container started shows inside for rslave and rshared volumes, not for
// rprivate; a mount made inside shows on the host only for rshared.
func TestMountPropagation(t *testing.T) { bothInits(t, testMountPropagation) }

func testMountPropagation(t *testing.T) {
	for _, tc := range []struct {
		name, prop, rootProp string
		inward, outward      bool
	}{
		{name: "rprivate", prop: "rprivate"},
		{name: "rslave", prop: "rslave", rootProp: "rslave", inward: true},
		{name: "rshared", prop: "rshared", rootProp: "rshared", inward: true, outward: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			root := busyboxRootfs(t, e.dir)
			withApplets(t, root, "mount")
			vol, src := filepath.Join(e.dir, "vol"), filepath.Join(e.dir, "src")
			sharedDir(t, vol, unix.MS_SHARED)
			for _, d := range []string{filepath.Join(vol, "fromhost"), filepath.Join(vol, "fromctr"), src} {
				must(t, os.MkdirAll(d, 0o755))
			}
			must(t, os.WriteFile(filepath.Join(src, "flag"), nil, 0o644))

			// The container says it runs, waits for the host's mount, lists
			// it, then mounts something of its own.
			spec := baseSpec(root, "sh", "-c", `touch /vol/ready; while [ ! -e /vol/go ]; do sleep 0.02; done
echo "in: $(ls -A /vol/fromhost)"; mount -t tmpfs ctr /vol/fromctr && touch /vol/fromctr/mine`)
			addCaps(spec, "CAP_SYS_ADMIN")
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol,
				Options: []string{"rbind", tc.prop, "rw"}})
			spec.Linux.RootfsPropagation = tc.rootProp
			hostErr := make(chan error, 1)
			go func() { hostErr <- mountWhenReady(vol, src) }()
			out, st, err := e.run("prop-"+tc.name, spec)
			must(t, err)
			must(t, <-hostErr)
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			if got := strings.Contains(out, "in: flag"); got != tc.inward {
				t.Errorf("host mount seen inside = %v, want %v (output %q)", got, tc.inward, out)
			}
			_, err = os.Stat(filepath.Join(vol, "fromctr", "mine"))
			if got := err == nil; got != tc.outward {
				t.Errorf("container mount seen on the host = %v, want %v", got, tc.outward)
			}
			unix.Unmount(filepath.Join(vol, "fromctr"), unix.MNT_DETACH)
			must(t, unix.Unmount(filepath.Join(vol, "fromhost"), unix.MNT_DETACH))
		})
	}
}

// mountWhenReady binds src on vol/fromhost once the container runs, then
// lets it go on.
func mountWhenReady(vol, src string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(vol, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("container never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := unix.Mount(src, filepath.Join(vol, "fromhost"), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(vol, "go"), nil, 0o644)
}

func addCaps(s *specs.Spec, caps ...string) {
	c := s.Process.Capabilities
	c.Bounding = append(append([]string{}, c.Bounding...), caps...)
	c.Effective = append(append([]string{}, c.Effective...), caps...)
	c.Permitted = append(append([]string{}, c.Permitted...), caps...)
}

// Read-only volumes as a user sees them: "ro" makes the volume itself
// read-only and leaves a mount under it writable (CRI readonly without
// recursive_read_only); "rro" makes the whole tree read-only.
func TestMountReadonly(t *testing.T) { bothInits(t, testMountReadonly) }

func testMountReadonly(t *testing.T) {
	for _, tc := range []struct {
		name           string
		opts           []string
		topRW, belowRW bool
	}{
		{name: "rw", opts: []string{"rbind", "rprivate", "rw"}, topRW: true, belowRW: true},
		{name: "ro", opts: []string{"rbind", "rprivate", "ro"}, belowRW: true},
		{name: "rro", opts: []string{"rbind", "rprivate", "rro"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			root := busyboxRootfs(t, e.dir)
			vol := filepath.Join(e.dir, "vol")
			below := filepath.Join(vol, "tmpfs")
			must(t, os.MkdirAll(below, 0o755))
			must(t, unix.Mount("tmpfs", below, "tmpfs", 0, ""))
			t.Cleanup(func() { must(t, unix.Unmount(below, unix.MNT_DETACH)) })
			spec := baseSpec(root, "sh", "-c", `touch /vol/f && echo top-rw; touch /vol/tmpfs/f && echo below-rw; true`)
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: tc.opts})
			out, st, err := e.run("ro-"+tc.name, spec)
			must(t, err)
			if st.ExitCode() != 0 {
				t.Fatalf("exit %d: %s", st.ExitCode(), out)
			}
			if got := strings.Contains(out, "top-rw"); got != tc.topRW {
				t.Errorf("volume writable = %v, want %v (output %q)", got, tc.topRW, out)
			}
			if got := strings.Contains(out, "below-rw"); got != tc.belowRW {
				t.Errorf("mount under the volume writable = %v, want %v (output %q)", got, tc.belowRW, out)
			}
			if !tc.topRW && !strings.Contains(out, "Read-only file system") {
				t.Errorf("write did not fail with EROFS: %q", out)
			}
		})
	}
}

// A container that allocates beyond its memory limit is killed by the
// kernel's OOM killer: it exits by SIGKILL (137) and its cgroup counts the
// kill until the container is deleted (the monitor reads it then).
func TestOOMKill(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	withApplets(t, root, "dd")
	// The init is charged to the container from its first page (it joins
	// the cgroup before its Go runtime starts, as runc's does), and under
	// -race it alone uses ~17 MiB when the limit is written: stay above it.
	limit := int64(40 << 20)
	spec := baseSpec(root, "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit},
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	spec.Linux.CgroupsPath = e.cg + "/oom"
	c, err := e.rt.Create(ctx, "oom", spec, IOnull())
	must(t, err)
	defer e.rt.Delete(ctx, "oom", true)
	before, err := e.rt.Stats(ctx, "oom")
	must(t, err)
	must(t, e.rt.Start(ctx, "oom"))
	st, err := c.Wait()
	must(t, err)
	after, err := e.rt.Stats(ctx, "oom")
	must(t, err)
	if st.ExitCode() != 137 {
		t.Errorf("exit code %d, want 137", st.ExitCode())
	}
	if after.Memory.OOMKills <= before.Memory.OOMKills {
		t.Errorf("OOM kills %d -> %d, want a rise", before.Memory.OOMKills, after.Memory.OOMKills)
	}
	must(t, e.rt.Delete(ctx, "oom", false))
}

// A propagation option on a new filesystem (not a bind) applies to that
// mount, as runtime-tools' mounts test asks: "shared" on a tmpfs makes it a
// shared mount inside the container.
func TestPropagationOfNewMount(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "grep", " /shared-tmp ", "/proc/self/mountinfo")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/shared-tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"shared"}})
	out, st, err := e.run("newmount-prop", spec)
	must(t, err)
	if st.ExitCode() != 0 || !strings.Contains(out, " shared:") {
		t.Fatalf("exit %d, mountinfo %q: want a shared tmpfs", st.ExitCode(), out)
	}
}
