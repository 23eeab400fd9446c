package imagesvc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cri-server/cri-server/errdefs"
)

// pushLayers pushes an image of the given layers (bottom first) as repo and
// returns its reference and the layers' blob digests.
func pushLayers(t *testing.T, reg *testRegistry, repo string, layers ...[]ent) (string, []string) {
	t.Helper()
	var ls []v1.Layer
	var digests []string
	for _, ents := range layers {
		l, err := tarball.LayerFromOpener(opener(mkTar(t, ents...).Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		digests = append(digests, d.String())
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.host + "/" + repo
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref, digests
}

// Layers unpack in parallel, each into its own snapshot, so an upper
// layer's whiteouts may be written before the files they hide: the overlay
// still hides them. The bottom layer is held back so that it lands last.
func TestParallelPullWhiteoutsHideLowerLayers(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	ref, digests := pushLayers(t, reg, "wh:1",
		[]ent{{name: "etc/gone", body: "g"}, {name: "etc/kept", body: "k"}, {name: "opq/old", body: "o"}, {name: "dir/sub/f", body: "f"}},
		[]ent{{name: "etc/.wh.gone"}, {name: "opq/", typ: tar.TypeDir, mode: 0o755}, {name: "opq/.wh..wh..opq"}, {name: "opq/new", body: "n"}, {name: "dir/.wh.sub"}},
		[]ent{{name: "etc/gone", body: "back"}, {name: "top", body: "t"}},
	)
	hook := func(digest string, b []byte) []byte {
		if digest == digests[0] {
			time.Sleep(300 * time.Millisecond)
		}
		return b
	}
	reg.blobHook.Store(&hook)
	s := newService(t, Options{})
	img, err := s.Pull(context.Background(), ref, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	mnt, err := s.Mount(img.ID, "wh-test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Remove("wh-test"); err != nil {
			t.Error(err)
		}
	}()
	for _, tc := range []struct {
		name, path, body string // body "" means hidden
	}{
		{name: "whiteout hides the lower file", path: "opq/old"},
		{name: "sibling of a whiteout stays", path: "etc/kept", body: "k"},
		{name: "file re-added above its whiteout", path: "etc/gone", body: "back"},
		{name: "opaque dir keeps its own files", path: "opq/new", body: "n"},
		{name: "whited-out dir hides its tree", path: "dir/sub/f"},
		{name: "top layer", path: "top", body: "t"},
	} {
		b, err := os.ReadFile(filepath.Join(mnt, tc.path))
		if tc.body == "" && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %s readable (%q, %v); want hidden", tc.name, tc.path, b, err)
		}
		if tc.body != "" && string(b) != tc.body {
			t.Errorf("%s: %s = %q, %v; want %q", tc.name, tc.path, b, err, tc.body)
		}
	}
}

// A bad layer between good ones fails the pull with FailedPrecondition
// while its neighbours unpack in parallel, and leaves nothing behind: no
// image, no snapshot of the good layers, no ingest file.
func TestBadLayerInParallelPullKeepsNothing(t *testing.T) {
	requireRoot(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MB per file
	var notTar bytes.Buffer
	zw := gzip.NewWriter(&notTar)
	zw.Write(big)
	zw.Close()
	for _, tc := range []struct {
		name   string
		mangle func([]byte) []byte
	}{
		{name: "byte flipped in the compressed data", mangle: func(b []byte) []byte {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff
			return b
		}},
		{name: "valid gzip of no tar", mangle: func([]byte) []byte { return notTar.Bytes() }},
		{name: "shorter than the manifest says", mangle: func(b []byte) []byte { return b[:len(b)/2] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t, "", "")
			var layers [][]ent
			for i := range 5 {
				layers = append(layers, []ent{{name: "l" + string(rune('0'+i)) + "/f", body: string(big)}})
			}
			ref, digests := pushLayers(t, reg, "bad:1", layers...)
			hook := func(digest string, b []byte) []byte {
				if digest == digests[2] {
					return tc.mangle(b)
				}
				return b
			}
			reg.blobHook.Store(&hook)
			s := newService(t, Options{KeepLayerBlobs: true})
			_, err := s.Pull(context.Background(), ref, Auth{})
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("pull = %v; want FailedPrecondition", err)
			}
			if len(s.List()) != 0 {
				t.Fatal("an image is visible after a failed pull")
			}
			storeEmpty(t, s)
		})
	}
}
