package imagesvc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cri-server/cri-server/errdefs"
)

// Layers compressed with gzip, zstd or not at all unpack to the same files.
func TestLayerCompressions(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	s := newService(t, Options{})
	for _, tc := range []struct {
		name  string
		layer func(tarBytes []byte) (v1.Layer, error)
	}{
		{"gzip", func(b []byte) (v1.Layer, error) {
			return tarball.LayerFromOpener(opener(b), tarball.WithCompression(compression.GZip))
		}},
		{"zstd", func(b []byte) (v1.Layer, error) {
			return tarball.LayerFromOpener(opener(b), tarball.WithCompression(compression.ZStd))
		}},
		{"uncompressed", func(b []byte) (v1.Layer, error) { return static.NewLayer(b, types.OCIUncompressedLayer), nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.layer(mkTar(t, ent{name: "etc/hello", body: "hello " + tc.name}).Bytes())
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutate.AppendLayers(empty.Image, l)
			if err != nil {
				t.Fatal(err)
			}
			img = mutate.MediaType(img, types.OCIManifestSchema1)
			ref := reg.host + "/fmt:" + tc.name
			r, _ := name.ParseReference(ref)
			if err := remote.Write(r, img); err != nil {
				t.Fatal(err)
			}
			got, err := s.Pull(context.Background(), ref, Auth{})
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(s.snapshotPath(got.ChainIDs[0]), "fs", "etc", "hello"))
			if string(data) != "hello "+tc.name {
				t.Fatalf("unpacked %q, %v", data, err)
			}
		})
	}
}

func opener(b []byte) tarball.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// From an index, this node's platform is pulled; the repo digest is the
// index's, the one the kubelet asked for.
func TestIndexPicksPlatform(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	amd, _ := random.Image(512, 1)
	arm, _ := random.Image(512, 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	r, _ := name.ParseReference(reg.host + "/multi:1")
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	s := newService(t, Options{Platform: ociPlatform("linux", "amd64")})
	img, err := s.Pull(context.Background(), reg.host+"/multi:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := amd.ConfigName()
	idxDigest, _ := idx.Digest()
	if img.ID != wantID.String() || img.RepoDigests[0] != reg.host+"/multi@"+idxDigest.String() {
		t.Fatalf("pulled %s %v; want %s from index %s", img.ID, img.RepoDigests, wantID, idxDigest)
	}
	s2 := newService(t, Options{Platform: ociPlatform("linux", "s390x")})
	if _, err := s2.Pull(context.Background(), reg.host+"/multi:1", Auth{}); err == nil || !strings.Contains(err.Error(), "s390x") {
		t.Fatalf("missing platform: %v", err)
	}
}

func TestSchema1Refused(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	body := `{"schemaVersion":1,"name":"old","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}`
	req, _ := http.NewRequest(http.MethodPut, reg.srv.URL+"/v2/old/manifests/1", strings.NewReader(body))
	req.Header.Set("Content-Type", string(types.DockerManifestSchema1Signed))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("put schema1: %v %v", resp, err)
	}
	resp.Body.Close()
	s := newService(t, Options{})
	_, err = s.Pull(context.Background(), reg.host+"/old:1", Auth{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "schema 1") {
		t.Fatalf("schema 1 pull: %v", err)
	}
}

// A download slower than the stall timeout overall, but never silent for
// that long, completes.
func TestSlowHealthyPullNotCancelled(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	reg.push(t, "trickle:1", 1)
	reg.trickle.Store(true)
	s := newService(t, Options{StallTimeout: 300 * time.Millisecond})
	start := time.Now()
	if _, err := s.Pull(context.Background(), reg.host+"/trickle:1", Auth{}); err != nil {
		t.Fatalf("slow pull killed after %s: %v", time.Since(start), err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("the trickle was not slow (%s): the test proves nothing", d)
	}
}
