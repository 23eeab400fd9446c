// Package imagesvc owns images: reference parsing, registry pulls (mirrors,
// insecure registries, auth), a content-addressed blob store with digest and
// size checks, layer unpack into per-chain-id snapshots, the image index,
// removal with garbage collection, filesystem usage, and the overlay rootfs
// of each container built from an image's snapshots.
//
// On disk, under Options.Root:
//
//	index.db              image records and container rootfs records (bbolt)
//	blobs/sha256/<hex>    manifests, configs (and layer blobs if kept), verified
//	snapshots/<chain>/fs  one layer's unpacked diff, keyed by its chain id
//	ingest/, snapshots/.tmp-*  work in progress; removed on start
//	containers/<id>/{upper,work}  container writable layers
//
// A pull writes blobs and snapshots first and the image record last, in one
// bbolt commit, so a crash never leaves a visible half image; what the crash
// left behind is unreferenced and the start-up GC removes it.
package imagesvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/store"
)

// Options configure a Service.
type Options struct {
	// Root holds blobs, snapshots, the index and container upper dirs.
	Root string
	// State holds the container rootfs mount points (gone after reboot).
	State string
	// Registry holds mirrors and insecure registries.
	Registry config.Registry
	// Auths holds credentials per host ("host[:port]") for mirrors, and for
	// registries when the kubelet sends none. The kubelet's credentials are
	// for the image's registry and are never sent to a mirror (containerd
	// issue 10540).
	Auths map[string]Auth
	// StallTimeout cancels a pull whose pending read received nothing for
	// this long. Zero means one minute.
	StallTimeout time.Duration
	// KeepLayerBlobs keeps each layer's compressed blob after unpacking it.
	// Off by default, like containerd's discard_unpacked_layers and CRI-O:
	// the kubelet only runs images, and writing every layer twice halves
	// pull throughput on a disk-bound node. Digests and sizes are verified
	// either way; manifests and configs are always kept.
	KeepLayerBlobs bool
	// Platform is picked from image indexes; zero means this node's.
	Platform ocispec.Platform
	Log      *slog.Logger
}

// Service is the image service. Its methods are safe for concurrent use.
type Service struct {
	opts Options
	log  *slog.Logger
	db   *store.DB

	flight singleflight.Group
	ctx    context.Context // pulls run on it so one caller's cancel cannot fail another's
	cancel context.CancelFunc

	gcMu  sync.RWMutex // held exclusively while GC deletes, shared while pulls lease
	mu    sync.Mutex
	imgs  map[string]*record        // image id -> record
	cfgs  map[string]*ocispec.Image // image id -> parsed config
	rfs   map[string]*rootfsRecord  // container id -> rootfs
	lease map[string]int            // blob digests and chain ids a pull is writing
}

const bucketRootfs = "rootfs"

// New opens the store under opts.Root, removes what a crash left behind and
// collects garbage.
func New(opts Options) (*Service, error) {
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = time.Minute
	}
	if opts.Platform.OS == "" {
		opts.Platform = defaultPlatform()
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	for _, d := range []string{"blobs/sha256", "snapshots", "ingest", "containers"} {
		if err := os.MkdirAll(filepath.Join(opts.Root, d), 0o700); err != nil {
			return nil, fmt.Errorf("create image store: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(opts.State, "rootfs"), 0o700); err != nil {
		return nil, fmt.Errorf("create rootfs dir: %w", err)
	}
	db, err := store.Open(filepath.Join(opts.Root, "index.db"))
	if err != nil {
		return nil, err
	}
	s := &Service{opts: opts, log: opts.Log.With("component", "images"), db: db,
		imgs: map[string]*record{}, cfgs: map[string]*ocispec.Image{},
		rfs: map[string]*rootfsRecord{}, lease: map[string]int{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close cancels pulls in flight and closes the index. Mounts stay: they
// belong to containers, which outlive the daemon.
func (s *Service) Close() error {
	s.cancel()
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	return s.db.Close()
}

func (s *Service) load() error {
	recs, err := store.List[record](s.db, store.BucketImages)
	if err != nil {
		return fmt.Errorf("load images: %w", err)
	}
	// Tags move between records in two commits; a crash between them leaves
	// one tag on two images, and the newer one owns it.
	owner := map[string]*record{}
	for _, r := range recs {
		for _, t := range append(append([]string{}, r.RepoTags...), r.RepoDigests...) {
			if o, ok := owner[t]; !ok || o.Updated.Before(r.Updated) {
				owner[t] = r
			}
		}
		s.imgs[r.ID] = r
	}
	for _, r := range recs {
		r.RepoTags = filterOwned(r.RepoTags, owner, r)
		r.RepoDigests = filterOwned(r.RepoDigests, owner, r)
		cfg, err := s.readConfig(r.ID)
		if err != nil {
			s.log.Warn("image config unreadable; dropping image", "image", r.ID, "error", err)
			delete(s.imgs, r.ID)
			s.db.Delete(store.BucketImages, r.ID)
			continue
		}
		s.cfgs[r.ID] = cfg
	}
	rfs, err := store.List[rootfsRecord](s.db, bucketRootfs)
	if err != nil {
		return fmt.Errorf("load rootfs records: %w", err)
	}
	for _, r := range rfs {
		s.rfs[r.Container] = r
	}
	return nil
}

func filterOwned(names []string, owner map[string]*record, r *record) []string {
	out := names[:0]
	for _, n := range names {
		if owner[n] == r {
			out = append(out, n)
		}
	}
	return out
}

// recover removes work a crashed pull left and everything no record needs.
func (s *Service) recover() error {
	for _, d := range []string{"ingest"} {
		p := filepath.Join(s.opts.Root, d)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clean %s: %w", d, err)
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return s.gc(true)
}

func (s *Service) readConfig(id string) (*ocispec.Image, error) {
	data, err := os.ReadFile(s.blobPath(id))
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	var c ocispec.Image
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("decode image config: %w", err)
	}
	return &c, nil
}

// GC removes every blob, snapshot and container dir that no image record, no
// container and no pull in flight needs.
func (s *Service) GC() error { return s.gc(false) }

// gc is GC; at start-up (no pull can be running) it also removes the
// half-unpacked snapshots of pulls a crash interrupted.
func (s *Service) gc(startup bool) error { return s.collect(startup, nil) }

// collect is gc limited to the blobs and snapshots named in only (digests
// and chain ids; nil means all), and then to no container dir: what a failed
// pull committed is freed at once, unless another image or pull uses it.
func (s *Service) collect(startup bool, only map[string]bool) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.mu.Lock()
	keep := map[string]bool{}
	for k := range s.lease {
		keep[k] = true
	}
	for _, r := range s.imgs {
		keep[r.ID] = true
		keep[r.ManifestDigest] = true
		for _, d := range r.IndexDigests {
			keep[d] = true
		}
		for _, l := range r.Layers {
			keep[l.Digest] = true
			keep[l.ChainID] = true
		}
	}
	containers := map[string]bool{}
	for _, r := range s.rfs {
		containers[r.Container] = true
		for _, c := range r.ChainIDs {
			keep[c] = true
		}
	}
	s.mu.Unlock()

	var errs []error
	var nb, ns int
	blobDir := filepath.Join(s.opts.Root, "blobs", "sha256")
	ents, _ := os.ReadDir(blobDir)
	for _, e := range ents {
		if !keep["sha256:"+e.Name()] && (only == nil || only["sha256:"+e.Name()]) {
			errs = append(errs, os.Remove(filepath.Join(blobDir, e.Name())))
			nb++
		}
	}
	snapDir := filepath.Join(s.opts.Root, "snapshots")
	ents, _ = os.ReadDir(snapDir)
	for _, e := range ents {
		if only != nil && !only["sha256:"+e.Name()] {
			continue
		}
		if strings.HasPrefix(e.Name(), ".tmp-") && startup || !strings.HasPrefix(e.Name(), ".") && !keep["sha256:"+e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(snapDir, e.Name())))
			ns++
		}
	}
	ctrDir := filepath.Join(s.opts.Root, "containers")
	ents = nil
	if only == nil {
		ents, _ = os.ReadDir(ctrDir)
	}
	for _, e := range ents {
		if !containers[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(ctrDir, e.Name())))
		}
	}
	if nb+ns > 0 {
		s.log.Info("image garbage collected", "blobs", nb, "snapshots", ns)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("collect image garbage: %w", err)
	}
	return nil
}

func (s *Service) blobPath(digest string) string {
	return filepath.Join(s.opts.Root, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

func (s *Service) snapshotPath(chainID string) string {
	return filepath.Join(s.opts.Root, "snapshots", strings.TrimPrefix(chainID, "sha256:"))
}

// leaseKeys protects keys from GC until the returned release runs.
func (s *Service) leaseKeys(keys ...string) (release func()) {
	s.gcMu.RLock()
	s.mu.Lock()
	for _, k := range keys {
		s.lease[k]++
	}
	s.mu.Unlock()
	s.gcMu.RUnlock()
	return func() {
		s.mu.Lock()
		for _, k := range keys {
			if s.lease[k]--; s.lease[k] <= 0 {
				delete(s.lease, k)
			}
		}
		s.mu.Unlock()
	}
}
