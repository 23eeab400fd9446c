package oci

import (
	"errors"
	"os"
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
