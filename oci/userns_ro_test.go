package oci_test

import (
	"strings"
	"testing"
)

// A read-only root and the default masked and read-only paths in a joined
// user namespace: the remounts keep the flags the kernel locked on mounts
// copied into a less privileged mount namespace.
func TestUserNSReadonlyRoot(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	base := usernsBase() + 3*65536
	chownTree(t, root, int(base))
	spec := usernsSpec(t, root, base, "sh", "-c",
		"touch /x 2>/dev/null && echo ROOT-WRITABLE; cat /proc/kcore 2>/dev/null | head -c1 | wc -c; "+
			"echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo PROCSYS-WRITABLE; touch /dev/shm/y && echo SHM-OK")
	spec.Root.Readonly = true
	out, st, err := e.run("usernsro", spec)
	must(t, err)
	if st.ExitCode() != 0 || strings.Contains(out, "WRITABLE") || !strings.Contains(out, "SHM-OK") || !strings.Contains(out, "0\n") {
		t.Fatalf("exit %d output %q", st.ExitCode(), out)
	}
}
