package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// imageVolumeMounter is the part of the image service that serves image
// volumes (CRI Mount.image). Its mounts are released by imageService.Remove
// of the container.
type imageVolumeMounter interface {
	MountImageVolume(ctx context.Context, imageID, containerID string, n int) (string, error)
}

// MountImageVolume mounts an image read-only for one of a container's
// image volumes.
func (a imageAdapter) MountImageVolume(ctx context.Context, imageID, containerID string, n int) (string, error) {
	return a.svc.MountImageVolume(imageID, containerID, n)
}

// prepareMounts turns the kubelet's mounts into what the spec binds: host
// paths resolved on the host and checked against the propagation asked for,
// image volumes mounted. It returns the config with those mounts, for the
// spec, and the mounts ContainerStatus reports (as asked, plus the image ref
// of each image volume). The image volumes it mounts are released with the
// container's rootfs (imageService.Remove).
func (s *Server) prepareMounts(ctx context.Context, id string, cfg *runtime.ContainerConfig) (*runtime.ContainerConfig, []*runtime.Mount, error) {
	if len(cfg.GetMounts()) == 0 {
		return cfg, nil, nil
	}
	forSpec := make([]*runtime.Mount, 0, len(cfg.Mounts))
	forStatus := make([]*runtime.Mount, 0, len(cfg.Mounts))
	for i, m := range cfg.Mounts {
		sm, st, err := s.prepareMount(ctx, id, i, m)
		if err != nil {
			return nil, nil, fmt.Errorf("prepare mount %s: %w", m.GetContainerPath(), err)
		}
		forSpec, forStatus = append(forSpec, sm), append(forStatus, st)
	}
	out := proto.Clone(cfg).(*runtime.ContainerConfig)
	out.Mounts = forSpec
	return out, forStatus, nil
}

func (s *Server) prepareMount(ctx context.Context, id string, n int, m *runtime.Mount) (*runtime.Mount, *runtime.Mount, error) {
	if m.GetImage() != nil {
		return s.prepareImageVolume(ctx, id, n, m)
	}
	if m.GetHostPath() == "" {
		return m, m, nil // the spec refuses it with its own message
	}
	src, err := resolveHostPath(m.HostPath)
	if err != nil {
		return m, nil, err
	}
	if err := checkPropagation(src, m.Propagation); err != nil {
		return m, nil, err
	}
	out := proto.Clone(m).(*runtime.Mount)
	out.HostPath = src
	return out, m, nil
}

// resolveHostPath creates a missing host path as a directory (the kubelet
// and containerd do so) and resolves symlinks on the host: the executor
// must bind the directory a symlink names, not the link (containerd
// EvalSymlinks too).
func resolveHostPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", errdefs.InvalidArgument("host_path %q is not absolute", p)
	}
	// Lstat: a dangling symlink is not a missing path to create.
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("create host path %s: %w", p, err)
		}
	}
	src, err := filepath.EvalSymlinks(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", errdefs.NotFound("host path %s: a symlink in it points nowhere", p)
	}
	if err != nil {
		return "", fmt.Errorf("resolve host path %s: %w", p, err)
	}
	return src, nil
}

// checkPropagation refuses a volume whose host mount cannot carry the
// propagation asked for, as containerd does: Bidirectional needs a shared
// host mount, HostToContainer a shared or slave one. Otherwise the
// container would silently never see (or never share) later mounts.
func checkPropagation(src string, p runtime.MountPropagation) error {
	if p == runtime.MountPropagation_PROPAGATION_PRIVATE {
		return nil
	}
	mp, opt, err := mountOf(src)
	if err != nil {
		return err
	}
	shared := strings.Contains(opt, "shared:")
	slave := strings.Contains(opt, "master:")
	switch {
	case p == runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL && !shared:
		return errdefs.FailedPrecondition("path %q is mounted on %q but it is not a shared mount", src, mp)
	case p == runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER && !shared && !slave:
		return errdefs.FailedPrecondition("path %q is mounted on %q but it is not a shared or slave mount", src, mp)
	}
	return nil
}

// mountOf returns the mount point and the optional fields (shared:N,
// master:N) of the mount that holds path, found by its mount id.
func mountOf(path string) (mountPoint, optional string, err error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &stx); err != nil {
		return "", "", fmt.Errorf("stat host path %s: %w", path, err)
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", "", fmt.Errorf("read mountinfo: %w", err)
	}
	want := strconv.FormatUint(stx.Mnt_id, 10)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - type source superopts
		f := strings.Fields(sc.Text())
		if len(f) < 7 || f[0] != want {
			continue
		}
		var opt []string
		for _, o := range f[6:] {
			if o == "-" {
				break
			}
			opt = append(opt, o)
		}
		return unescapeMountinfo(f[4]), strings.Join(opt, " "), nil
	}
	return "", "", errdefs.NotFound("mount of host path %s (id %s) not in mountinfo", path, want)
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// prepareImageVolume mounts the image of an image volume (KEP-4639) and
// binds its root, or the image_sub_path inside it, read-only.
func (s *Server) prepareImageVolume(ctx context.Context, id string, n int, m *runtime.Mount) (*runtime.Mount, *runtime.Mount, error) {
	if !m.Readonly {
		return m, nil, errdefs.InvalidArgument("image volumes must be read-only")
	}
	if m.HostPath != "" {
		return m, nil, errdefs.InvalidArgument("an image volume has no host_path (got %q)", m.HostPath)
	}
	if m.Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE {
		return m, nil, errdefs.InvalidArgument("image volumes support only private propagation")
	}
	mounter, ok := s.imageDeps.(imageVolumeMounter)
	if !ok {
		return m, nil, errdefs.Unimplemented("image volumes are not supported by this image service")
	}
	img, err := s.imageDeps.Resolve(ctx, m.Image.GetImage())
	if err != nil {
		// The kubelet pulls image volumes before it creates the container.
		return m, nil, fmt.Errorf("resolve image volume %s: %w", m.Image.GetImage(), err)
	}
	root, err := mounter.MountImageVolume(ctx, img.ID, id, n)
	if err != nil {
		return m, nil, err
	}
	src, err := imageSubPath(root, m.ImageSubPath)
	if err != nil {
		return m, nil, err
	}
	out := proto.Clone(m).(*runtime.Mount)
	out.Image, out.HostPath, out.ImageSubPath = nil, src, ""
	st := proto.Clone(m).(*runtime.Mount)
	st.Image.ImageRef = img.ID
	return out, st, nil
}

// imageSubPath resolves sub inside the mounted image root: it must exist and
// may not leave the image, through ".." or a symlink in the image.
func imageSubPath(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	clean := filepath.Clean(sub)
	if filepath.IsAbs(sub) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", errdefs.InvalidArgument("image_sub_path %q must be relative and stay inside the image", sub)
	}
	p, err := securejoin.SecureJoin(root, clean)
	if err != nil {
		return "", errdefs.InvalidArgument("image_sub_path %q: %v", sub, err)
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", errdefs.InvalidArgument("image_sub_path %q does not exist in the image", sub)
		}
		return "", fmt.Errorf("stat image_sub_path %q: %w", sub, err)
	}
	return p, nil
}

// recursiveReadOnlySupported reports whether the kernel has mount_setattr
// (Linux 5.12), which the executor uses for recursive read-only mounts.
// Probed with a call that must fail: EBADF when the syscall exists.
var recursiveReadOnlySupported = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
})
