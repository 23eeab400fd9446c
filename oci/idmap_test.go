package oci_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
)

// Idmapped mounts outside a joined user namespace: the executor makes a
// user namespace with the mount's mappings for mount_setattr. A source on a
// filesystem that cannot be idmapped (overlayfs) fails the create with
// FailedPrecondition and leaves nothing behind (newEnv's leak check).
func TestIdmappedMountOwnUserNS(t *testing.T) {
	e := newEnv(t)
	root := busyboxRootfs(t, e.dir)
	base := usernsBase() + 2*65536
	src := filepath.Join(e.dir, "src")
	must(t, os.Mkdir(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "f"), nil, 0o644))
	must(t, os.Chown(filepath.Join(src, "f"), 5, 5))
	for _, d := range []string{"ov", "ovl", "ovu", "ovw"} {
		must(t, os.Mkdir(filepath.Join(e.dir, d), 0o755))
	}
	ov := filepath.Join(e.dir, "ov")
	mountTestOverlay(t, []string{filepath.Join(e.dir, "ovl")}, filepath.Join(e.dir, "ovu"), filepath.Join(e.dir, "ovw"), ov)
	for _, tc := range []struct {
		name    string
		source  string
		want    string
		wantErr error
	}{
		// Mapping 0->base: the file's on-disk uid 5 shows as base+5 to a
		// process of the host's user namespace.
		{name: "container in the host user namespace", source: src, want: fmt.Sprintf("%d:%d", base+5, base+5)},
		{name: "overlayfs source", source: ov, wantErr: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := baseSpec(root, "stat", "-c", "%u:%g", "/m/f")
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/m", Type: "bind", Source: tc.source,
				Options: []string{"rbind"}, UIDMappings: idMap(base), GIDMappings: idMap(base)})
			out, _, err := e.run("idmapown", spec)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			must(t, err)
			if strings.TrimSpace(out) != tc.want {
				t.Fatalf("owner %q, want %q", out, tc.want)
			}
		})
	}
}
