package spec

import (
	"errors"
	"slices"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// The kubelet's volumes as binds: propagation and read-only options on each
// and the root propagation the most open one needs (as containerd).
func TestVolumes(t *testing.T) {
	const (
		priv = runtime.MountPropagation_PROPAGATION_PRIVATE
		h2c  = runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		bidi = runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL
	)
	vol := func(dst string, p runtime.MountPropagation, ro, rro bool) *runtime.Mount {
		return &runtime.Mount{ContainerPath: dst, HostPath: "/host" + dst, Propagation: p, Readonly: ro, RecursiveReadOnly: rro}
	}
	for _, tc := range []struct {
		name     string
		mounts   []*runtime.Mount
		wantOpts map[string][]string
		wantRoot string
		err      error
	}{
		{name: "private rw", mounts: []*runtime.Mount{vol("/a", priv, false, false)},
			wantOpts: map[string][]string{"/a": {"rbind", "rprivate", "rw"}}},
		{name: "readonly is not recursive", mounts: []*runtime.Mount{vol("/a", priv, true, false)},
			wantOpts: map[string][]string{"/a": {"rbind", "rprivate", "ro"}}},
		{name: "recursive readonly", mounts: []*runtime.Mount{vol("/a", priv, true, true)},
			wantOpts: map[string][]string{"/a": {"rbind", "rprivate", "rro"}}},
		{name: "host to container makes the root rslave", mounts: []*runtime.Mount{vol("/a", priv, false, false), vol("/b", h2c, false, false)},
			wantOpts: map[string][]string{"/a": {"rbind", "rprivate", "rw"}, "/b": {"rbind", "rslave", "rw"}}, wantRoot: "rslave"},
		{name: "bidirectional wins over host to container", mounts: []*runtime.Mount{vol("/a", bidi, false, false), vol("/b", h2c, true, false)},
			wantOpts: map[string][]string{"/a": {"rbind", "rshared", "rw"}, "/b": {"rbind", "rslave", "ro"}}, wantRoot: "rshared"},
		{name: "recursive readonly without readonly", mounts: []*runtime.Mount{vol("/a", priv, false, true)}, err: errdefs.ErrInvalidArgument},
		{name: "recursive readonly with propagation", mounts: []*runtime.Mount{vol("/a", h2c, true, true)}, err: errdefs.ErrInvalidArgument},
		{name: "relative container path", mounts: []*runtime.Mount{vol("a", priv, false, false)}, err: errdefs.ErrInvalidArgument},
		{name: "unresolved image volume", mounts: []*runtime.Mount{{ContainerPath: "/a", Image: &runtime.ImageSpec{Image: "x"}}},
			err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base(t)
			in.Config.Mounts = tc.mounts
			s, err := Generate(in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for dst, want := range tc.wantOpts {
				m := mountAt(s, dst)
				if m == nil || m.Type != "bind" || m.Source != "/host"+dst || !slices.Equal(m.Options, want) {
					t.Errorf("mount %s = %+v, want a bind with %v", dst, m, want)
				}
			}
			if s.Linux.RootfsPropagation != tc.wantRoot {
				t.Errorf("rootfsPropagation %q, want %q", s.Linux.RootfsPropagation, tc.wantRoot)
			}
		})
	}
}
