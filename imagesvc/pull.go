package imagesvc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cri-server/cri-server/errdefs"
)

// parallelLayers bounds layers fetched and unpacked at once: enough to fill
// the network and the disk, few enough not to thrash a small node.
const parallelLayers = 6

// Pull fetches ref (mirrors first, then the registry itself), verifies and
// unpacks it and records it. Concurrent pulls of one reference share one
// download; a caller that gives up does not cancel it for the others.
func (s *Service) Pull(ctx context.Context, ref string, auth Auth) (*Image, error) {
	n, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	// Callers with other credentials do not share a pull: one caller's
	// wrong password must not fail another's pull.
	key := n.String() + "\x00" + digestOf([]byte(auth.Username+"\x00"+auth.Password+"\x00"+auth.Auth+"\x00"+auth.IdentityToken+"\x00"+auth.RegistryToken))
	ch := s.flight.DoChan(key, func() (any, error) { return s.pull(n, auth) })
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("pull image %s: %w", n, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Image), nil
	}
}

func (s *Service) pull(n Reference, auth Auth) (*Image, error) {
	eps, err := s.endpoints(n, auth)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ep := range eps {
		start := time.Now()
		log := s.log.With("image", n.String(), "endpoint", ep.host)
		log.Info("pulling image")
		img, bytes, err := s.pullFrom(ep, n, log)
		if err == nil {
			d := time.Since(start)
			log.Info("image pulled", "id", img.ID, "bytes", bytes, "duration", d,
				"MBps", fmt.Sprintf("%.1f", float64(bytes)/1e6/max(d.Seconds(), 1e-6)))
			return img, nil
		}
		log.Warn("pull from endpoint failed", "mirror", ep.mirror, "duration", time.Since(start), "error", err)
		errs = append(errs, fmt.Errorf("from %s: %w", ep.host, err))
		if s.ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("pull image %s: %w", n, errors.Join(errs...))
}

func (s *Service) pullFrom(ep endpoint, n Reference, log interface {
	Info(string, ...any)
	Debug(string, ...any)
}) (*Image, int64, error) {
	ctx, w, stop := watchStalls(s.ctx, s.opts.StallTimeout)
	defer stop()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				log.Info("pull progress", "bytes", w.received())
			}
		}
	}()
	img, err := s.fetch(ctx, ep, n, log)
	if err != nil {
		if c := context.Cause(ctx); errors.Is(c, ErrStalled) {
			err = c
		}
		return nil, w.received(), classify(err)
	}
	return img, w.received(), nil
}

// regTransportFor is the transport every request to ep goes through.
func regTransportFor(ep endpoint) *regTransport {
	tr := &regTransport{base: http.DefaultTransport, secure: map[string]bool{}}
	if !ep.insecure {
		tr.secure[ep.host] = true
	}
	return tr
}

func (s *Service) remoteOptions(ctx context.Context, ep endpoint, tr http.RoundTripper) []remote.Option {
	p := s.opts.Platform
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(ep.auth.authenticator()),
		remote.WithTransport(tr), remote.WithPlatform(v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})}
}

// fetch pulls n from ep: one auth handshake for the manifest, the config
// and the layers, then store. A failed pull keeps nothing.
func (s *Service) fetch(ctx context.Context, ep endpoint, n Reference, log interface{ Debug(string, ...any) }) (*Image, error) {
	var nopts []name.Option
	if ep.insecure {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(ep.host+"/"+n.Repository, nopts...)
	if err != nil {
		return nil, errdefs.InvalidArgument("repository %s/%s: %v", ep.host, n.Repository, err)
	}
	src, rt, err := newBlobSource(ctx, repo, ep.auth.authenticator(), regTransportFor(ep))
	if err != nil {
		return nil, err
	}
	rec, blobs, err := s.resolveImage(ctx, ep, n, repo, rt)
	if err != nil {
		return nil, err
	}
	keys := []string{rec.ID, rec.ManifestDigest}
	keys = append(keys, rec.IndexDigests...)
	for _, l := range rec.Layers {
		keys = append(keys, l.Digest, l.ChainID)
	}
	release := s.leaseKeys(keys...)
	img, err := s.store(ctx, src, n, rec, blobs, log)
	release()
	if err != nil {
		// Keep nothing of a failed pull: the layers that did unpack go now,
		// unless another image or pull has them.
		only := map[string]bool{}
		for _, k := range keys {
			only[k] = true
		}
		if gerr := s.collect(false, only); gerr != nil {
			s.log.Warn("free a failed pull's layers", "image", n.String(), "error", gerr)
		}
		return nil, err
	}
	return img, nil
}

// store fetches and unpacks the layers in parallel, writes the small blobs,
// makes it all durable with one syncfs and commits the record.
func (s *Service) store(ctx context.Context, src *blobSource, n Reference, rec *record, blobs map[string][]byte, log interface{ Debug(string, ...any) }) (*Image, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	for _, lr := range rec.Layers {
		g.Go(func() error {
			start := time.Now()
			if err := s.fetchLayer(gctx, src, lr); err != nil {
				return fmt.Errorf("layer %s: %w", lr.Digest, err)
			}
			log.Debug("layer ready", "layer", lr.Digest, "bytes", lr.Size, "duration", time.Since(start))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	synced := time.Now()
	for d, data := range blobs {
		if err := s.writeBlob(d, data); err != nil {
			return nil, err
		}
	}
	// Durable before visible: a crash before the commit leaves only garbage.
	if err := syncfsPath(s.blobPath(rec.ID)); err != nil {
		return nil, err
	}
	log.Debug("image synced", "duration", time.Since(synced))
	return s.commit(n, rec)
}

// resolveImage fetches and checks the manifest (picking this node's platform
// from an index) and the config, and returns the record to be, with the
// small blobs to store.
func (s *Service) resolveImage(ctx context.Context, ep endpoint, n Reference, repo name.Repository, rt http.RoundTripper) (*record, map[string][]byte, error) {
	var r name.Reference = repo.Tag(n.Tag)
	if n.Digest != "" {
		r = repo.Digest(n.Digest)
	}
	ropts := s.remoteOptions(ctx, ep, rt)
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, nil, fmt.Errorf("get manifest: %w", err)
	}
	if n.Digest != "" && desc.Digest.String() != n.Digest {
		return nil, nil, errdefs.FailedPrecondition("manifest digest %s, want %s", desc.Digest, n.Digest)
	}
	if desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed {
		return nil, nil, errdefs.FailedPrecondition("%s is a Docker schema 1 manifest, which is deprecated and not supported; push it again with a current client", n)
	}
	rec := &record{RepoDigests: []string{n.Name() + "@" + desc.Digest.String()}}
	if t := n.TagRef(); t != "" {
		rec.RepoTags = []string{t}
	}
	blobs := map[string][]byte{}
	if desc.MediaType.IsIndex() {
		rec.IndexDigests = []string{desc.Digest.String()}
		blobs[desc.Digest.String()] = desc.Manifest
	} else if !desc.MediaType.IsImage() {
		return nil, nil, errdefs.FailedPrecondition("%s has media type %q, not an image manifest or index", n, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, nil, fmt.Errorf("select platform %s/%s: %w", s.opts.Platform.OS, s.opts.Platform.Architecture, err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, fmt.Errorf("decode manifest: %w", err)
	}
	rec.ManifestDigest = digestOf(raw)
	blobs[rec.ManifestDigest] = raw
	cfgRaw, err := img.RawConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("get image config: %w", err)
	}
	if d := digestOf(cfgRaw); d != m.Config.Digest.String() || int64(len(cfgRaw)) != m.Config.Size {
		return nil, nil, errdefs.FailedPrecondition("image config has digest %s size %d, manifest says %s size %d", d, len(cfgRaw), m.Config.Digest, m.Config.Size)
	}
	rec.ID = m.Config.Digest.String()
	blobs[rec.ID] = cfgRaw
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		return nil, nil, errdefs.FailedPrecondition("decode image config: %v", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, nil, errdefs.FailedPrecondition("image config has %d diff ids for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	chain := ""
	for i, l := range m.Layers {
		diff := cfg.RootFS.DiffIDs[i].String()
		chain = chainID(chain, diff)
		rec.Layers = append(rec.Layers, layerRecord{Digest: l.Digest.String(), DiffID: diff, ChainID: chain, Size: l.Size, MediaType: string(l.MediaType)})
		rec.Size += l.Size
	}
	rec.Size += m.Config.Size
	return rec, blobs, nil
}

// chainID is the OCI chain id: sha256(parent + " " + diffID), the diff id
// itself for the bottom layer.
func chainID(parent, diffID string) string {
	if parent == "" {
		return diffID
	}
	return digestOf([]byte(parent + " " + diffID))
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// classify gives registry errors an errdefs class so the kubelet sees
// NotFound or PermissionDenied instead of Unknown.
func classify(err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusBadGateway:
			return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		}
	}
	return err
}
