package imagesvc

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs"
)

func TestPullWithBasicAuth(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "alice", "s3cret")
	want := reg.push(t, "team/app:v1", 3)
	wantID, _ := want.ConfigName()
	s := newService(t, Options{KeepLayerBlobs: true})
	ref := reg.host + "/team/app:v1"

	_, err := s.Pull(context.Background(), ref, Auth{Username: "alice", Password: "wrong"})
	if !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Fatalf("pull with a wrong password: %v", err)
	}
	img, err := s.Pull(context.Background(), ref, Auth{Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != wantID.String() || len(img.ChainIDs) != 3 || img.Config.User != "1234" {
		t.Fatalf("pulled %+v", img)
	}
	md, _ := want.Digest()
	for _, byName := range []string{ref, img.ID, img.ID[7:19], reg.host + "/team/app@" + md.String()} {
		if got, err := s.Resolve(byName); err != nil || got.ID != img.ID {
			t.Errorf("Resolve(%q) = %v, %v", byName, got, err)
		}
	}
	if u := s.ImageFsUsage(); u.Bytes == 0 || u.Inodes == 0 {
		t.Errorf("image fs usage %+v", u)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.opts.Root, "blobs", "sha256")); len(ents) != 5 {
		t.Errorf("kept %d blobs; want manifest, config and 3 layers", len(ents))
	}

	// A rootfs keeps the snapshots after the image is gone.
	root, err := s.Mount(img.ID, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Mount(img.ID, "c1"); err != nil || again != root {
		t.Fatalf("second Mount: %q %v", again, err)
	}
	if err := os.WriteFile(filepath.Join(root, "written"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveImage(ref); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("removed image still resolves: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "written")); err != nil {
		t.Fatalf("rootfs lost after image removal: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Remove("c1"); err != nil {
			t.Fatalf("Remove #%d: %v", i, err)
		}
	}
	if mounted(root) {
		t.Fatal("rootfs still mounted")
	}
	storeEmpty(t, s)
}

// A registry with a token service, as Docker Hub and most registries have:
// the pull follows the Bearer challenge with each kind of CRI credential.
func TestPullWithBearerToken(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	reg.push(t, "team/app:v1", 1)
	reg.bearer.Store(&bearerAuth{user: "bob", pass: "pw", refresh: "refresh-1", token: "tok-" + t.Name()})
	ref := reg.host + "/team/app:v1"
	for _, tc := range []struct {
		name string
		auth Auth
		ok   bool
	}{
		{"no credentials", Auth{}, false},
		{"wrong password", Auth{Username: "bob", Password: "nope"}, false},
		{"username and password", Auth{Username: "bob", Password: "pw"}, true},
		{"auth field", Auth{Auth: base64.StdEncoding.EncodeToString([]byte("bob:pw"))}, true},
		{"identity token", Auth{Username: "bob", IdentityToken: "refresh-1"}, true},
		{"registry token", Auth{RegistryToken: "tok-" + t.Name()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newService(t, Options{})
			before := reg.tokenGets.Load()
			img, err := s.Pull(context.Background(), ref, tc.auth)
			if !tc.ok {
				if !errors.Is(err, errdefs.ErrPermissionDenied) {
					t.Fatalf("pull: %v, want permission denied", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := s.RemoveImage(img.ID); err != nil {
				t.Fatal(err)
			}
			storeEmpty(t, s)
			// A registry token is used as it is; the others are exchanged.
			if got := reg.tokenGets.Load() - before; (tc.auth.RegistryToken != "") != (got == 0) {
				t.Errorf("%d token requests", got)
			}
		})
	}
}

func TestRemoveAndUntag(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	img := reg.push(t, "a:one", 1)
	for _, tag := range []string{"two", "three"} {
		r, _ := name.ParseReference(reg.host + "/a:" + tag)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	s := newService(t, Options{})
	pullAll := func() {
		for _, tag := range []string{"one", "two", "three"} {
			if _, err := s.Pull(context.Background(), reg.host+"/a:"+tag, Auth{}); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := s.Resolve(reg.host + "/a:one"); got == nil || len(got.RepoTags) != 3 || len(s.List()) != 1 {
			t.Fatalf("one image with three tags expected: %+v", got)
		}
	}
	pullAll()
	// Untag keeps the image while other tags remain.
	if err := s.Untag(reg.host + "/a:one"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Resolve(reg.host + "/a:two"); err != nil || len(got.RepoTags) != 2 {
		t.Fatalf("untag lost the image or other tags: %v %v", got, err)
	}
	if _, err := s.Resolve(reg.host + "/a:one"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("untagged name still resolves: %v", err)
	}
	// RemoveImage by one tag removes the image with all its tags (CRI).
	pullAll()
	if err := s.RemoveImage(reg.host + "/a:two"); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"one", "two", "three"} {
		if _, err := s.Resolve(reg.host + "/a:" + tag); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("tag %s survived RemoveImage: %v", tag, err)
		}
	}
	if err := s.RemoveImage(reg.host + "/a:two"); err != nil {
		t.Fatalf("removing an absent image: %v", err)
	}
	storeEmpty(t, s)
}

func TestConcurrentPullsDownloadOnce(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	reg.push(t, "c:1", 3)
	s := newService(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Pull(context.Background(), reg.host+"/c:1", Auth{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// 3 layers + 1 config.
	if n := reg.blobGets.Load(); n != 4 {
		t.Fatalf("%d blob downloads for 8 concurrent pulls; want 4", n)
	}
}

func TestDigestMismatchKeepsNothing(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	reg.push(t, "bad:1", 2)
	reg.corrupt.Store(true)
	s := newService(t, Options{})
	if _, err := s.Pull(context.Background(), reg.host+"/bad:1", Auth{}); err == nil {
		t.Fatal("corrupt blobs accepted")
	}
	if len(s.List()) != 0 {
		t.Fatal("an image is visible after a failed pull")
	}
	storeEmpty(t, s)
}

func TestMirrorsTriedInOrderWithTheirOwnCredentials(t *testing.T) {
	requireRoot(t)
	upstream := newRegistry(t, "", "")
	mirror := newRegistry(t, "mirror-user", "mirror-pass")
	mirror.push(t, "lib/app:1", 2)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s := newService(t, Options{
		Registry: config.Registry{Mirrors: map[string]config.Mirror{upstream.host: {Endpoints: []string{
			dead.URL, "http://" + mirror.host}}}},
		Auths: map[string]Auth{mirror.host: {Username: "mirror-user", Password: "mirror-pass"}},
	})
	// The kubelet's credentials are for upstream; the mirror gets its own.
	img, err := s.Pull(context.Background(), upstream.host+"/lib/app:1", Auth{Username: "kubelet", Password: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if upstream.blobGets.Load() != 0 || mirror.blobGets.Load() == 0 {
		t.Fatalf("upstream %d, mirror %d blob fetches", upstream.blobGets.Load(), mirror.blobGets.Load())
	}
	if len(img.RepoTags) != 1 || img.RepoTags[0] != upstream.host+"/lib/app:1" {
		t.Fatalf("image named after the mirror: %v", img.RepoTags)
	}
	// Not on the mirror: upstream answers.
	upstream.push(t, "lib/other:1", 1)
	if _, err := s.Pull(context.Background(), upstream.host+"/lib/other:1", Auth{}); err != nil {
		t.Fatalf("fallback to upstream: %v", err)
	}
}

func TestStalledPullCancelled(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	reg.push(t, "slow:1", 1)
	reg.stall.Store(true)
	s := newService(t, Options{StallTimeout: 300 * time.Millisecond})
	_, err := s.Pull(context.Background(), reg.host+"/slow:1", Auth{})
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "no bytes received") {
		t.Fatalf("stalled pull: %v", err)
	}
	storeEmpty(t, s)
}

// A crash mid-pull leaves ingest files, a half-unpacked snapshot and blobs
// no record names; the next start removes them and keeps the good image.
func TestCrashRecovery(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t, "", "")
	reg.push(t, "ok:1", 1)
	dir := t.TempDir()
	opts := Options{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state")}
	s := newService(t, opts)
	img, err := s.Pull(context.Background(), reg.host+"/ok:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	junk := []string{"ingest/blob-123", "snapshots/.tmp-abc/fs/etc/passwd",
		"blobs/sha256/" + strings.Repeat("a", 64), "snapshots/" + strings.Repeat("b", 64) + "/fs/x"}
	for _, j := range junk {
		p := filepath.Join(opts.Root, j)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("junk"), 0o644)
	}
	s2 := newService(t, opts)
	for _, j := range junk {
		if _, err := os.Stat(filepath.Join(opts.Root, j)); err == nil {
			t.Errorf("%s survived a restart", j)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(opts.Root, "snapshots")); len(ents) != 1 {
		t.Errorf("snapshots after restart: %d, want the image's one", len(ents))
	}
	if got, err := s2.Resolve(img.ID); err != nil || got.Config.User != "1234" {
		t.Fatalf("good image lost: %v", err)
	}
	if err := s2.RemoveImage(img.ID); err != nil {
		t.Fatal(err)
	}
	storeEmpty(t, s2)
}

// A removal (and its GC) while another pull is unpacking must not delete
// that pull's work in progress.
func TestGCDuringPull(t *testing.T) {
	requireRoot(t)
	fast, slow := newRegistry(t, "", ""), newRegistry(t, "", "")
	fast.push(t, "a:1", 1)
	slow.push(t, "b:1", 2)
	slow.trickle.Store(true)
	s := newService(t, Options{})
	a, err := s.Pull(context.Background(), fast.host+"/a:1", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Pull(context.Background(), slow.host+"/b:1", Auth{})
		done <- err
	}()
	time.Sleep(250 * time.Millisecond)
	if err := s.RemoveImage(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("pull broken by a concurrent GC: %v", err)
	}
	b, err := s.Resolve(slow.host + "/b:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.ChainIDs {
		if !exists(s.snapshotPath(c)) {
			t.Fatalf("snapshot %s missing", c)
		}
	}
}
