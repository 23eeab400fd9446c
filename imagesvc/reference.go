package imagesvc

import (
	"regexp"
	"strings"

	"github.com/cri-server/cri-server/errdefs"
)

// DefaultRegistry is where names without a host go, spelled the way the
// kubelet and containerd spell it (ggcr's "index.docker.io" is only the API
// endpoint).
const DefaultRegistry = "docker.io"

// Reference is a normalized image reference: Registry/Repository[:Tag][@Digest].
type Reference struct {
	Registry   string
	Repository string
	Tag        string
	Digest     string
}

var (
	reComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	reTag       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	reDigest    = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	reHost      = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`)
)

// ParseReference normalizes ref the way Docker and containerd do:
// "busybox" is docker.io/library/busybox:latest; a tag and a digest may both
// be given, and then the digest is what is pulled.
func ParseReference(ref string) (Reference, error) {
	var r Reference
	if ref == "" || strings.ContainsAny(ref, " \t\n") {
		return r, errdefs.InvalidArgument("image reference %q is not valid", ref)
	}
	rest := ref
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !reDigest.MatchString(r.Digest) {
			return r, errdefs.InvalidArgument("image reference %q: digest %q is not sha256:<64 hex>", ref, r.Digest)
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if !reTag.MatchString(r.Tag) {
			return r, errdefs.InvalidArgument("image reference %q: tag %q is not valid", ref, r.Tag)
		}
	}
	first, remainder, found := strings.Cut(rest, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		r.Registry, rest = first, remainder
		if !reHost.MatchString(r.Registry) {
			return r, errdefs.InvalidArgument("image reference %q: registry %q is not a host", ref, r.Registry)
		}
	} else {
		r.Registry = DefaultRegistry
	}
	if r.Registry == "index.docker.io" || r.Registry == "registry-1.docker.io" {
		r.Registry = DefaultRegistry
	}
	if r.Registry == DefaultRegistry && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	for _, c := range strings.Split(rest, "/") {
		if !reComponent.MatchString(c) {
			return r, errdefs.InvalidArgument("image reference %q: repository %q is not valid (lowercase letters, digits, separators)", ref, rest)
		}
	}
	r.Repository = rest
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Name is registry/repository.
func (r Reference) Name() string { return r.Registry + "/" + r.Repository }

// String is the full normalized reference.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// TagRef is "name:tag", the form of a repo tag; "" when there is no tag.
func (r Reference) TagRef() string {
	if r.Tag == "" {
		return ""
	}
	return r.Name() + ":" + r.Tag
}

// pullRef is what is asked of the registry: the digest when there is one.
func (r Reference) pullRef() string {
	if r.Digest != "" {
		return r.Repository + "@" + r.Digest
	}
	return r.Repository + ":" + r.Tag
}
