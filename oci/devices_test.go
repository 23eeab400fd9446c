package oci_test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A spec that denies every device (as `runc spec` and most generators
// write) still leaves the default devices usable, and nothing else.
func TestDeviceCgroupDenyAll(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	spec := baseSpec(root, "sh", "-c", `echo x > /dev/null && echo null=ok
head -c1 /dev/zero >/dev/null && echo zero=ok
{ busybox mknod /tmp/mem c 1 1 2>/dev/null && head -c1 /tmp/mem >/dev/null 2>&1 && echo mem=open; } || echo mem=denied
sleep 0 & wait $! && echo background=ok`)
	spec.Linux.Resources = &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	out, st, err := e.run("devdeny", spec)
	must(t, err)
	if st.ExitCode() != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode(), out)
	}
	for _, want := range []string{"null=ok", "zero=ok", "mem=denied", "background=ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(spec.Linux.Resources.Devices) != 1 {
		t.Errorf("the caller's spec was modified: %d device rules", len(spec.Linux.Resources.Devices))
	}
}
