package oci

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-server/cri-server/errdefs"
)

func TestCachedBinary(t *testing.T) {
	content := []byte("\x7fELF the shim")
	write := func(t *testing.T, p string, b []byte, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		digest  string
		setup   func(t *testing.T, dir string)
		want    []byte // the file's content after
		wantErr error
	}{
		{name: "first use writes it", digest: "abc123", want: content},
		{name: "reused as it is", digest: "abc123", want: []byte("\x7fELF old shim"),
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "abc123"), []byte("\x7fELF old shim"), 0o555)
			}},
		{name: "a short file is replaced", digest: "abc123", want: content,
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "abc123"), []byte("\x7fEL"), 0o500) }},
		{name: "a file only its owner may execute is replaced", digest: "abc123", want: content,
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "abc123"), []byte("\x7fELF old shim"), 0o500)
			}},
		{name: "a file others may write is replaced", digest: "abc123", want: content,
			setup: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "abc123"), []byte("\x7fELF bad shim"), 0o522)
			}},
		{name: "older builds are pruned", digest: "abc123", want: content,
			setup: func(t *testing.T, dir string) { write(t, filepath.Join(dir, "0ld"), content, 0o500) }},
		{name: "cache dir others may write", digest: "abc123", wantErr: errdefs.ErrPermissionDenied,
			setup: func(t *testing.T, dir string) {
				if err := os.Mkdir(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				os.Chmod(dir, 0o777)
			}},
		{name: "state root others may write", digest: "abc123", wantErr: errdefs.ErrPermissionDenied,
			setup: func(t *testing.T, dir string) { os.Chmod(filepath.Dir(dir), 0o1777) }},
		{name: "empty digest", digest: "", wantErr: errdefs.ErrInvalidArgument},
		{name: "digest escaping the dir", digest: "../x", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "root", ".init")
			if err := os.Mkdir(filepath.Dir(dir), 0o711); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			p, err := CachedBinary(dir, tc.digest, content)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("CachedBinary: %v, want %v", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(dir, tc.digest)); err == nil {
					t.Fatal("wrote the binary anyway")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(dir, tc.digest) {
				t.Fatalf("path %s, want %s", p, filepath.Join(dir, tc.digest))
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("cached %q (%v), want %q", got, err, tc.want)
			}
			// Executable by anyone (an init in a user namespace that
			// does not map root), writable by nobody.
			if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o555 {
				t.Fatalf("cached binary mode %v, want r-xr-xr-x", fi.Mode())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("cache holds %v, want only %s (no temporary file, no older build)", ents, tc.digest)
			}
		})
	}
}
