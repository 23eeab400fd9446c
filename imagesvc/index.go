package imagesvc

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/store"
)

// record is one image in the index, keyed by its id (the config digest, as
// Docker and containerd name images).
type record struct {
	ID             string
	RepoTags       []string // name:tag
	RepoDigests    []string // name@sha256:...
	ManifestDigest string
	IndexDigests   []string // the indexes the manifest was picked from
	Layers         []layerRecord
	Size           int64 // compressed layers + config, what the kubelet's GC counts
	Pinned         bool
	Updated        time.Time
}

type layerRecord struct {
	Digest    string
	DiffID    string
	ChainID   string
	Size      int64
	MediaType string
}

// Image is an image as the rest of the daemon sees it.
type Image struct {
	ID          string // sha256:<config digest>
	RepoTags    []string
	RepoDigests []string
	Size        uint64
	Pinned      bool
	// ChainIDs of the layers, bottom first.
	ChainIDs []string
	// Config is the image's runtime configuration (Entrypoint, Cmd, Env,
	// WorkingDir, User, StopSignal, Volumes...).
	Config ocispec.ImageConfig
	// Spec is the whole image config document.
	Spec *ocispec.Image
}

func (s *Service) imageLocked(r *record) *Image {
	img := &Image{ID: r.ID, RepoTags: slices.Clone(r.RepoTags), RepoDigests: slices.Clone(r.RepoDigests),
		Size: uint64(r.Size), Pinned: r.Pinned, Spec: s.cfgs[r.ID]}
	for _, l := range r.Layers {
		img.ChainIDs = append(img.ChainIDs, l.ChainID)
	}
	if img.Spec != nil {
		img.Config = img.Spec.Config
	}
	return img
}

// Resolve finds an image by id (full or a unique prefix of at least 12 hex
// digits, with or without "sha256:"), by name[:tag] or by name@digest.
func (s *Service) Resolve(ref string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	return s.imageLocked(r), nil
}

// resolveLocked returns the record and, when ref named the image by tag or
// digest, the name that matched.
// Preconditions: s.mu held.
func (s *Service) resolveLocked(ref string) (*record, string, error) {
	if ref == "" {
		return nil, "", errdefs.InvalidArgument("image reference is empty")
	}
	id := strings.TrimPrefix(ref, "sha256:")
	if isHex(id) && len(id) >= 12 {
		var found *record
		for k, r := range s.imgs {
			if strings.HasPrefix(strings.TrimPrefix(k, "sha256:"), id) {
				if found != nil {
					return nil, "", errdefs.InvalidArgument("image id prefix %q is ambiguous", ref)
				}
				found = r
			}
		}
		if found != nil {
			return found, "", nil
		}
	}
	n, err := ParseReference(ref)
	if err != nil {
		return nil, "", errdefs.NotFound("image %q", ref)
	}
	var want string
	if n.Digest != "" {
		want = n.Name() + "@" + n.Digest
	} else {
		want = n.TagRef()
	}
	for _, r := range s.imgs {
		if slices.Contains(r.RepoTags, want) || slices.Contains(r.RepoDigests, want) {
			return r, want, nil
		}
	}
	return nil, "", errdefs.NotFound("image %q", ref)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// List returns every image, sorted by first tag then id.
func (s *Service) List() []*Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Image, 0, len(s.imgs))
	for _, r := range s.imgs {
		out = append(out, s.imageLocked(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// commit makes a pulled image visible: one bbolt commit for the new record,
// then the names it took are removed from the images that had them.
func (s *Service) commit(n Reference, r *record) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.imgs[r.ID]; ok {
		r.RepoTags = mergeNames(old.RepoTags, r.RepoTags)
		r.RepoDigests = mergeNames(old.RepoDigests, r.RepoDigests)
		r.IndexDigests = mergeNames(old.IndexDigests, r.IndexDigests)
		r.Pinned = old.Pinned || r.Pinned
	}
	r.Updated = time.Now()
	if err := s.db.Put(store.BucketImages, r.ID, r); err != nil {
		return nil, fmt.Errorf("commit image %s: %w", n, err)
	}
	for id, o := range s.imgs {
		if id == r.ID {
			continue
		}
		tags := slices.DeleteFunc(slices.Clone(o.RepoTags), func(t string) bool { return slices.Contains(r.RepoTags, t) })
		if len(tags) == len(o.RepoTags) {
			continue
		}
		o.RepoTags = tags
		if err := s.db.Put(store.BucketImages, id, o); err != nil {
			s.log.Warn("untag previous image", "image", id, "error", err)
		}
	}
	s.imgs[r.ID] = r
	cfg, err := s.readConfig(r.ID)
	if err != nil {
		return nil, err
	}
	s.cfgs[r.ID] = cfg
	return s.imageLocked(r), nil
}

func mergeNames(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// RemoveImage removes the image ref names, by id, tag or digest, with all
// its tags: what CRI RemoveImage means (critest v1.37 "removing image by one
// tag should remove all tags"; containerd and CRI-O agree). Its blobs and
// snapshots go too unless another image or a container still uses them.
// Removing an absent image is not an error (the kubelet retries removals).
func (s *Service) RemoveImage(ref string) error {
	s.mu.Lock()
	r, _, err := s.resolveLocked(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.db.Delete(store.BucketImages, r.ID); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("remove image %s: %w", r.ID, err)
	}
	delete(s.imgs, r.ID)
	delete(s.cfgs, r.ID)
	s.mu.Unlock()
	s.log.Info("image removed", "image", r.ID, "tags", r.RepoTags)
	return s.GC()
}

// Untag removes one tag (name:tag) from its image and keeps the image, as
// "docker rmi" does while other tags remain. Untagging the last tag removes
// the image. An absent tag is not an error.
func (s *Service) Untag(ref string) error {
	s.mu.Lock()
	r, name, err := s.resolveLocked(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if !slices.Contains(r.RepoTags, name) {
		s.mu.Unlock()
		return errdefs.InvalidArgument("%q is not a tag of image %s", ref, r.ID)
	}
	if len(r.RepoTags) == 1 {
		s.mu.Unlock()
		return s.RemoveImage(r.ID)
	}
	r.RepoTags = slices.DeleteFunc(slices.Clone(r.RepoTags), func(t string) bool { return t == name })
	err = s.db.Put(store.BucketImages, r.ID, r)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("untag image %s: %w", name, err)
	}
	s.log.Info("image untagged", "image", r.ID, "tag", name)
	return nil
}
