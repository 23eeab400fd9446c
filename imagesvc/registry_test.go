package imagesvc

import (
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
)

// Test helpers shared by the pull tests: a registry and a service.

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
