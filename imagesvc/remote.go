package imagesvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// Auth is a registry credential, the fields of the CRI AuthConfig.
type Auth struct {
	Username      string
	Password      string
	Auth          string // base64 "user:password"
	IdentityToken string
	RegistryToken string
}

func (a Auth) authenticator() authn.Authenticator {
	if a == (Auth{}) {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
}

// ErrStalled is the cause of a pull cancelled for receiving no bytes.
var ErrStalled = errors.New("pull stalled")

func defaultPlatform() ocispec.Platform {
	return ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
}

// endpoint is one place to pull a repository from.
type endpoint struct {
	host     string // host[:port] as ggcr names it
	insecure bool   // plain HTTP
	auth     Auth
	mirror   bool
}

// endpoints lists the mirrors configured for n's registry in order, then the
// registry itself.
func (s *Service) endpoints(n Reference, upstream Auth) ([]endpoint, error) {
	var eps []endpoint
	for _, e := range s.opts.Registry.Mirrors[n.Registry].Endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" {
			return nil, errdefs.InvalidArgument("mirror endpoint %q is not a URL", e)
		}
		eps = append(eps, endpoint{host: u.Host, insecure: u.Scheme == "http", auth: s.opts.Auths[u.Host], mirror: true})
	}
	if upstream == (Auth{}) {
		upstream = s.opts.Auths[n.Registry]
	}
	eps = append(eps, endpoint{host: n.Registry, insecure: s.plainHTTP(n.Registry), auth: upstream})
	return eps, nil
}

// plainHTTP: only registries the config marks insecure, and loopback ones as
// containerd does. (ggcr on its own also speaks HTTP to RFC 1918 addresses;
// the transport below forbids that.)
func (s *Service) plainHTTP(host string) bool {
	if slices.Contains(s.opts.Registry.Insecure, host) {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if slices.Contains(s.opts.Registry.Insecure, h) || h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// transport enforces the scheme for registry hosts and reports every read
// to the pull's stall watch.
type regTransport struct {
	base   http.RoundTripper
	secure map[string]bool // registry host -> must use https
}

type watchKey struct{}

func (t *regTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.secure[req.URL.Host] && req.URL.Scheme == "http" {
		req = req.Clone(req.Context())
		req.URL.Scheme = "https"
	}
	w, _ := req.Context().Value(watchKey{}).(*watch)
	if w == nil {
		return t.base.RoundTrip(req)
	}
	done := w.begin()
	resp, err := t.base.RoundTrip(req)
	done()
	if err != nil {
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w}
	return resp, nil
}

// watch notices a stall: some read (or wait for response headers) has been
// pending for longer than the limit. A consumer that is slow to read (busy
// unpacking) has no pending read, so it is never taken for a stall.
type watch struct {
	mu      sync.Mutex
	pending map[int]time.Time
	next    int
	bytes   int64
}

func (w *watch) begin() (end func()) {
	w.mu.Lock()
	id := w.next
	w.next++
	w.pending[id] = time.Now()
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.pending, id)
		w.mu.Unlock()
	}
}

func (w *watch) stalledFor(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d time.Duration
	for _, t := range w.pending {
		d = max(d, now.Sub(t))
	}
	return d
}

func (w *watch) received() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bytes
}

type watchedBody struct {
	io.ReadCloser
	w *watch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	done := b.w.begin()
	n, err := b.ReadCloser.Read(p)
	done()
	b.w.mu.Lock()
	b.w.bytes += int64(n)
	b.w.mu.Unlock()
	return n, err
}

// watchStalls returns a context cancelled with ErrStalled when a read is
// pending for longer than limit.
func watchStalls(ctx context.Context, limit time.Duration) (context.Context, *watch, func()) {
	w := &watch{pending: map[int]time.Time{}}
	ctx, cancel := context.WithCancelCause(context.WithValue(ctx, watchKey{}, w))
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(max(limit/8, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if d := w.stalledFor(now); d >= limit {
					cancel(fmt.Errorf("%w: no bytes received for %s: %w", ErrStalled, d.Round(time.Second), errdefs.ErrDeadlineExceeded))
					return
				}
			}
		}
	}()
	return ctx, w, func() { close(stop); cancel(nil) }
}

// blobSource fetches the blobs of one repository through the transport the
// manifest came through (one auth handshake per pull). Unlike ggcr's layer
// readers it does not hash: ingestLayer hashes the stream once, while
// unpacking it.
type blobSource struct {
	client *http.Client
	base   string // scheme://host/v2/<repo>/blobs/
}

// newBlobSource authenticates to repo (ping, then the token or basic auth
// the challenge asks for) and returns the source and the transport for
// ggcr to reuse: ggcr uses a *transport.Wrapper as it is, where it would
// otherwise do its own handshake.
func newBlobSource(ctx context.Context, repo name.Repository, auth authn.Authenticator, base http.RoundTripper) (*blobSource, http.RoundTripper, error) {
	retry := transport.NewRetry(base, transport.WithRetryStatusCodes(http.StatusRequestTimeout,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, retry, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, nil, fmt.Errorf("authenticate to %s: %w", repo.RegistryStr(), err)
	}
	src := &blobSource{client: &http.Client{Transport: rt},
		base: repo.Registry.Scheme() + "://" + repo.RegistryStr() + "/v2/" + repo.RepositoryStr() + "/blobs/"}
	if _, ok := rt.(*transport.Wrapper); !ok {
		rt = base // anonymous: ggcr wraps and pings on its own
	}
	return src, rt, nil
}

// open starts the download of the blob digest, which must be size bytes.
func (b *blobSource) open(ctx context.Context, digest string, size int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+digest, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("blob %s: %v", digest, err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", digest, err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch blob %s: %w", digest, err)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != size {
		resp.Body.Close()
		return nil, errdefs.FailedPrecondition("blob %s has Content-Length %d, manifest says size %d", digest, resp.ContentLength, size)
	}
	return resp.Body, nil
}
