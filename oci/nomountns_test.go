package oci_test

import (
	"context"
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

// withoutMountNS drops the mount namespace (and the mounts, which would
// need one) from a spec.
func withoutMountNS(s *specs.Spec) {
	var keep []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != specs.MountNamespace {
			keep = append(keep, ns)
		}
	}
	s.Linux.Namespaces = keep
}

// A spec without a mount namespace shares the runtime's (runtime-tools'
// linux_ns_itype): the process and an exec'd one run in the rootfs (a
// chroot), in our mount namespace, and nothing is mounted in it.
func TestNoMountNamespace(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	must(t, os.WriteFile(filepath.Join(root, "etc", "marker"), []byte("in-rootfs"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	spec := baseSpec(root, "sleep", "100")
	withoutMountNS(spec)
	spec.Linux.CgroupsPath = e.cg + "/nomnt"
	c, err := e.rt.Create(ctx, "nomnt", spec, oci.IO{})
	must(t, err)
	defer e.rt.Delete(ctx, "nomnt", true)
	self, _ := os.Readlink("/proc/self/ns/mnt")
	if got, _ := os.Readlink("/proc/" + strconv.Itoa(c.Pid) + "/ns/mnt"); got != self {
		t.Errorf("init's mount namespace %s, want ours %s", got, self)
	}
	// Other tests on the machine mount too: only the rootfs is ours to watch.
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), root) {
		t.Errorf("something was mounted under the rootfs in our namespace:\n%s", mi)
	}
	must(t, e.rt.Start(ctx, "nomnt"))
	r, w, _ := os.Pipe()
	p, err := e.rt.Exec(ctx, "nomnt", &specs.Process{Args: []string{"cat", "/etc/marker"}, Env: []string{"PATH=/bin"}, Cwd: "/"}, oci.IO{Stdout: w})
	w.Close()
	must(t, err)
	st, err := p.Wait()
	must(t, err)
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	r.Close()
	if st.ExitCode() != 0 || string(buf[:n]) != "in-rootfs" {
		t.Errorf("exec: exit %d, output %q; want the rootfs's marker", st.ExitCode(), buf[:n])
	}
	must(t, e.rt.Delete(ctx, "nomnt", true))
	if _, err := c.Wait(); err != nil {
		t.Fatal(err)
	}

	// A read-only root would need a remount the host's namespace must not see.
	spec = baseSpec(root, "true")
	withoutMountNS(spec)
	spec.Root.Readonly = true
	if _, _, err := e.run("nomnt-ro", spec); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "root.readonly") {
		t.Fatalf("read-only root without a mount namespace: %v, want InvalidArgument naming root.readonly", err)
	}
}
