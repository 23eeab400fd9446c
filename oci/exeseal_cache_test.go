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
	tests := []struct {
		name    string
		digest  string
		before  []byte // what the cache holds under digest first, nil: nothing
		want    []byte // the file's content after, nil: an error
		wantErr error
	}{
		{name: "first use writes it", digest: "abc123", want: content},
		{name: "reused as it is", digest: "abc123", before: []byte("\x7fELF old shim"), want: []byte("\x7fELF old shim")},
		{name: "a short file is replaced", digest: "abc123", before: []byte("\x7fEL"), want: content},
		{name: "empty digest", digest: "", wantErr: errdefs.ErrInvalidArgument},
		{name: "digest escaping the dir", digest: "../x", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			if tc.before != nil {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, tc.digest), tc.before, 0o500); err != nil {
					t.Fatal(err)
				}
			}
			p, err := CachedBinary(dir, tc.digest, content)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("CachedBinary: %v, want %v", err, tc.wantErr)
				}
				if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 0 {
					t.Fatalf("left %v behind", ents)
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
			if fi, _ := os.Stat(p); fi.Mode().Perm()&0o222 != 0 {
				t.Fatalf("cached binary mode %v is writable", fi.Mode())
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Fatalf("cache holds %d files, want 1 (no temporary file left)", len(ents))
			}
		})
	}
}
