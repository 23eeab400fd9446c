package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("log_level = \"debug\"\n[cni]\nconf_dir = \"/x/net.d\"\n"), 0o600)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[cni]\nbindir = \"/x\"\n"), 0o600)
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{name: "version", args: []string{"version"}, out: "cri-server "},
		{name: "config from file", args: []string{"config", "--config", good}, out: `conf_dir = "/x/net.d"`},
		{name: "flag beats file", args: []string{"config", "--config", good, "--log-level", "warn"}, out: `log_level = "warn"`},
		{name: "unknown key named", args: []string{"config", "--config", bad}, code: 1, err: "unknown key cni.bindir"},
		{name: "explicit config missing", args: []string{"config", "--config", filepath.Join(dir, "none")}, code: 1, err: "read config"},
		{name: "bad flag value", args: []string{"config", "--config", good, "--cgroup-driver", "x"}, code: 1, err: "cgroup_driver"},
		{name: "unknown command", args: []string{"bogus"}, code: 2, err: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.out) || !strings.Contains(errb.String(), tt.err) {
				t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
			}
		})
	}
}

// A descriptor the daemon inherits without close-on-exec (a pipe from the
// shell or a supervisor) must not reach monitors and containers.
func TestCloseInheritedOnExec(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if n := closeInheritedOnExec(); n < 2 {
		t.Errorf("marked %d descriptors, want at least the pipe's 2", n)
	}
	for _, fd := range p {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("fd %d: flags %#x, %v: not close-on-exec", fd, flags, err)
		}
	}
}
