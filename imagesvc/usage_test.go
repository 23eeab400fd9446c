package imagesvc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-server/cri-server/errdefs"
)

// A container's writable layer counts what it wrote in its upper dir.
func TestWritableLayerUsage(t *testing.T) {
	s := newService(t, Options{})
	upper := filepath.Join(s.containerDir("c1"), "upper")
	if err := os.MkdirAll(filepath.Join(upper, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "tmp", "data"), make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data", filepath.Join(upper, "tmp", "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		bytes   uint64
		inodes  uint64
		wantErr error
	}{
		{name: "written files", id: "c1", bytes: 5000, inodes: 3},
		{name: "no layer", id: "c2", wantErr: errdefs.ErrNotFound},
		{name: "escape", id: "../c1", wantErr: errdefs.ErrInvalidArgument},
		{name: "empty", id: "", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := s.WritableLayerUsage(tc.id)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Bytes != tc.bytes || u.Inodes != tc.inodes || u.Mountpoint != filepath.Join(s.opts.Root, "containers") {
				t.Fatalf("usage %+v, want %d bytes %d inodes", u, tc.bytes, tc.inodes)
			}
		})
	}
	os.RemoveAll(s.containerDir("c1"))
}
