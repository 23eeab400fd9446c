package imagesvc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/errdefs"
)

// testRegistry is an in-process registry on a random port. Hooks let a test
// require basic auth, count blob fetches, corrupt or stall them.
type testRegistry struct {
	srv        *httptest.Server
	host       string
	user, pass string
	blobGets   atomic.Int64
	corrupt    atomic.Bool
	stall      atomic.Bool
	trickle    atomic.Bool // blobs sent in 512-byte pieces 100 ms apart
	// bearer, once set, makes the registry answer with a Bearer challenge
	// and accept only the token its /token endpoint hands out.
	bearer    atomic.Pointer[bearerAuth]
	tokenGets atomic.Int64
	// blobHook, once set, sees each blob GET's digest and body before it is
	// sent: it may delay it or return other bytes.
	blobHook atomic.Pointer[func(digest string, body []byte) []byte]
}

// bearerAuth is a token service: it gives token for user:pass (basic auth
// on GET) or for the refresh token (POST, grant_type=refresh_token).
type bearerAuth struct {
	user, pass, refresh, token string
}

func newRegistry(t *testing.T, user, pass string) *testRegistry {
	t.Helper()
	tr := &testRegistry{user: user, pass: pass}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := tr.bearer.Load(); b != nil {
			if r.URL.Path == "/token" {
				tr.tokenGets.Add(1)
				u, p, _ := r.BasicAuth()
				r.ParseForm()
				ok := (u == b.user && p == b.pass) ||
					(r.Method == http.MethodPost && r.Form.Get("grant_type") == "refresh_token" && r.Form.Get("refresh_token") == b.refresh)
				if !ok {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				fmt.Fprintf(w, `{"token": %q, "access_token": %q}`, b.token, b.token)
				return
			}
			if r.Header.Get("Authorization") != "Bearer "+b.token {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, tr.srv.URL))
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if tr.user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != tr.user || p != tr.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			tr.blobGets.Add(1)
			if tr.stall.Load() {
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
				return
			}
			if tr.trickle.Load() {
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, r)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				for b := rec.Body.Bytes(); len(b) > 0; b = b[min(512, len(b)):] {
					w.Write(b[:min(512, len(b))])
					w.(http.Flusher).Flush()
					time.Sleep(100 * time.Millisecond)
				}
				return
			}
			if hook := tr.blobHook.Load(); hook != nil {
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, r)
				b := (*hook)(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], rec.Body.Bytes())
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(b)))
				w.WriteHeader(rec.Code)
				w.Write(b)
				return
			}
			if tr.corrupt.Load() {
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, r)
				b := rec.Body.Bytes()
				if len(b) > 0 {
					b[len(b)/2] ^= 0xff
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(b)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// push writes a random image of n layers as repo:tag and returns it.
func (tr *testRegistry) push(t *testing.T, repo string, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(2048, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{User: "1234", Cmd: []string{"/bin/sh"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(tr.host + "/" + repo)
	auth := authn.Anonymous
	if tr.user != "" {
		auth = &authn.Basic{Username: tr.user, Password: tr.pass}
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatal(err)
	}
	return img
}

func newService(t *testing.T, opts Options) *Service {
	t.Helper()
	if opts.Root == "" {
		dir := t.TempDir()
		opts.Root, opts.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	}
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storeEmpty fails the test if a blob, snapshot or ingest file remains.
func storeEmpty(t *testing.T, s *Service) {
	t.Helper()
	for _, d := range []string{"blobs/sha256", "snapshots", "ingest", "containers"} {
		ents, _ := os.ReadDir(filepath.Join(s.opts.Root, d))
		if len(ents) > 0 {
			t.Errorf("%s not empty: %d entries, first %s", d, len(ents), ents[0].Name())
		}
	}
}

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
