package imagesvc

import (
	"errors"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-server/cri-server/errdefs"
)

func TestParseReference(t *testing.T) {
	dg := "sha256:" + "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"[:64]
	for _, tc := range []struct {
		name, in, want string
		bad            bool
	}{
		{name: "short", in: "busybox", want: "docker.io/library/busybox:latest"},
		{name: "tag", in: "busybox:1.36", want: "docker.io/library/busybox:1.36"},
		{name: "full docker", in: "docker.io/library/busybox:1.36", want: "docker.io/library/busybox:1.36"},
		{name: "index alias", in: "index.docker.io/library/busybox", want: "docker.io/library/busybox:latest"},
		{name: "user repo", in: "kubernetes/pause", want: "docker.io/kubernetes/pause:latest"},
		{name: "host port digest", in: "localhost:5000/a/b@" + dg, want: "localhost:5000/a/b@" + dg},
		{name: "tag and digest", in: "registry.k8s.io/pause:3.10@" + dg, want: "registry.k8s.io/pause:3.10@" + dg},
		{name: "ipv6", in: "[::1]:5000/x:y", want: "[::1]:5000/x:y"},
		{name: "uppercase repo", in: "Busybox", bad: true},
		{name: "bad digest", in: "busybox@sha256:xyz", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "space", in: "bu sybox", bad: true},
		{name: "double slash", in: "a//b", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReference(tc.in)
			if tc.bad {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("ParseReference(%q) = %v, %v; want InvalidArgument", tc.in, r, err)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("ParseReference(%q) = %q, %v; want %q", tc.in, r.String(), err, tc.want)
			}
		})
	}
}

func ociPlatform(os, arch string) ocispec.Platform {
	return ocispec.Platform{OS: os, Architecture: arch}
}
