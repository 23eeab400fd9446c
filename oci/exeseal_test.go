package oci

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSealedExeUnwritable is the CVE-2019-5736 check: the file the init is
// executed from cannot be opened for writing, even by root.
func TestSealedExeUnwritable(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	tests := []struct {
		name string
		seal func(string) (*os.File, error)
		want error
	}{
		{"read-only mount", roMountExe, unix.EROFS},
		{"memfd", memfdExe, unix.EPERM},
		{"embedded binary", sealBinaryFile, unix.EPERM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A binary nobody runs: the attack writes once the runtime has
			// exited, when "text file busy" no longer protects it.
			bin := filepath.Join(t.TempDir(), "bin")
			b, err := os.ReadFile("/bin/true")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bin, b, 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := tc.seal(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w, err := os.OpenFile(procFd(int(f.Fd())), os.O_WRONLY, 0)
			if err == nil {
				_, err = w.Write([]byte("pwned"))
				w.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("write to sealed binary: %v, want %v", err, tc.want)
			}
			if got, _ := os.ReadFile(bin); string(got) != string(b) {
				t.Fatal("binary changed")
			}
		})
	}
}

func sealBinaryFile(src string) (*os.File, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	return SealBinary("test-bin", b)
}

// TestSealedExeShared checks that a Runtime (and a monitor, whose
// /proc/self/exe is the daemon's sealed shim) shares an already sealed
// binary instead of copying it once more, and copies anything else.
func TestSealedExeShared(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	orig := string(b)
	sealed, err := SealBinary("test-true", b)
	if err != nil {
		t.Fatal(err)
	}
	defer sealed.Close()
	if string(b) != orig {
		t.Fatal("SealBinary changed the caller's bytes (paging out must keep them)")
	}
	if _, err := SealBinary("empty", nil); err == nil {
		t.Fatal("SealBinary of nothing succeeded")
	}
	unsealed, err := newExecMemfd("test-unsealed")
	if err != nil {
		t.Fatal(err)
	}
	defer unsealed.Close()
	if _, err := unsealed.Write(b); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		src    string
		shared bool
	}{
		{"sealed memfd", procFd(int(sealed.Fd())), true},
		{"unsealed memfd", procFd(int(unsealed.Fd())), false},
		{"plain file", "/bin/true", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := sealedExe(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if same := sameFile(t, f, sealed); same != tc.shared {
				t.Fatalf("shares the sealed memfd: %v, want %v", same, tc.shared)
			}
			if _, err := openSealed(tc.src); (err == nil) != tc.shared {
				t.Fatalf("openSealed: %v", err)
			}
			// Whatever sealedExe returned must still run, as the init does.
			if out, err := exec.Command(procFd(int(f.Fd()))).CombinedOutput(); err != nil {
				t.Fatalf("exec sealed binary: %v %s", err, out)
			}
		})
	}
}

func sameFile(t *testing.T, a, b *os.File) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a.Fd()), &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(b.Fd()), &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
