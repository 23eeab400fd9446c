package seccomp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	mseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
)

func profile(names ...string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{{Names: names, Action: specs.ActErrno}}}
}

func TestCompileCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".seccomp")
	want, wantFlags, err := Compile(profile("chmod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		prof    *specs.LinuxSeccomp
		entries int
	}{
		{"miss compiles and stores", profile("chmod"), 1},
		{"hit returns the same program", profile("chmod"), 1},
		{"another profile is another entry", profile("chmod", "fchmodat"), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bpf, flags, err := CompileCached(dir, tc.prof)
			if err != nil {
				t.Fatal(err)
			}
			if tc.entries == 1 && (!bytes.Equal(bpf, want) || flags != wantFlags) {
				t.Fatalf("program of %d bytes, flags %x; want %d bytes, flags %x", len(bpf), flags, len(want), wantFlags)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != tc.entries {
				t.Fatalf("%d cache entries, want %d", len(ents), tc.entries)
			}
			if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
				t.Fatalf("cache dir mode %v", fi.Mode())
			}
		})
	}
	// A truncated entry is recompiled, not installed.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.WriteFile(filepath.Join(dir, e.Name()), []byte("short"), 0o600)
	}
	if bpf, _, err := CompileCached(dir, profile("chmod")); err != nil || !bytes.Equal(bpf, want) {
		t.Fatalf("corrupt entry: %d bytes, %v", len(bpf), err)
	}
	// Errors are not cached.
	if _, _, err := CompileCached(dir, &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad profile: %v", err)
	}
}

// The default profile (RuntimeDefault), the one nearly every container has.
func BenchmarkCompile(b *testing.B) {
	p, err := mseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := Compile(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		dir := b.TempDir()
		for b.Loop() {
			if _, _, err := CompileCached(dir, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
