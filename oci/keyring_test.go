package oci_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/oci"
)

// The container possesses no keyring of the host: a key in the host root's
// user-session keyring (which every root process without a session keyring
// of its own possesses), with possessor-only permissions, is invisible
// inside, to the init's process and to an exec'd one (runc gives each its
// own session keyring for the same reason).
func TestNoHostKeyringPossessed(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	desc := "cri-server-test-" + hex.EncodeToString(b)
	id, err := unix.AddKey("user", desc, []byte("secret"), unix.KEY_SPEC_USER_SESSION_KEYRING)
	if err != nil {
		t.Skipf("keyrings unavailable: %v", err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0)
	// Possessor: view, read, search; nobody else anything.
	must(t, unix.KeyctlSetperm(id, 0x0b000000))
	probe := "grep -c " + desc + " /proc/keys; true"
	if out, _ := exec.Command("sh", "-c", probe).Output(); strings.TrimSpace(string(out)) != "1" {
		t.Skipf("a host child does not possess the user-session keyring here (%q): nothing to prove", out)
	}
	spec := baseSpec(root, "sh", "-c", probe)
	spec.Linux.MaskedPaths = nil
	out, st, err := e.run("keys", spec)
	must(t, err)
	if st.ExitCode() != 0 || strings.TrimSpace(out) != "0" {
		t.Errorf("init's process: exit %d, key seen %q times, want 0", st.ExitCode(), out)
	}
	spec = baseSpec(root, "sleep", "100")
	spec.Linux.MaskedPaths = nil
	s := e.start(t, "keys", spec)
	waitExeced(t, s.c.Pid, "sleep")
	if out := execOut(t, e, "keys", probe); strings.TrimSpace(out) != "0" {
		t.Errorf("exec'd process: key seen %q times, want 0", out)
	}
}

// execOut runs script in a running container and returns its output.
func execOut(t *testing.T, e *env, id, script string) string {
	t.Helper()
	r, w, _ := os.Pipe()
	defer r.Close()
	p, err := e.rt.Exec(context.Background(), id, &specs.Process{Args: []string{"sh", "-c", script}, Env: []string{"PATH=/bin"}, Cwd: "/"},
		oci.IO{Stdout: w, Stderr: w})
	w.Close()
	must(t, err)
	b, _ := io.ReadAll(r)
	_, err = p.Wait()
	must(t, err)
	return string(b)
}
