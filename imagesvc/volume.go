package imagesvc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cri-server/cri-server/errdefs"
)

// volumeSep joins a container id and the index of one of its image volumes
// into the key of the volume's record and mount point. Container ids are
// hex, so no container id contains it.
const volumeSep = "-imgvol-"

func volumeKey(containerID string, n int) string {
	return containerID + volumeSep + strconv.Itoa(n)
}

// MountImageVolume mounts imageID's snapshots read-only as the n-th image
// volume (CRI Mount.image) of containerID and returns the mount point. It
// is an overlay of the image's layers without an upper dir, so the kernel
// refuses every write, and the snapshots are held like a rootfs's until
// Remove(containerID). Mounting again returns the same path.
func (s *Service) MountImageVolume(imageID, containerID string, n int) (string, error) {
	if containerID == "" || containerID != filepath.Base(containerID) || containerID[0] == '.' ||
		strings.Contains(containerID, volumeSep) {
		return "", errdefs.InvalidArgument("container id %q is not valid", containerID)
	}
	if n < 0 {
		return "", errdefs.InvalidArgument("image volume index %d is negative", n)
	}
	key := volumeKey(containerID, n)
	rec, err := s.hold(key, imageID)
	if err != nil {
		return "", err
	}
	target := s.RootfsPath(key)
	if mounted(target) {
		return target, nil
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", fmt.Errorf("create image volume mount point: %w", err)
	}
	lowers := make([]string, 0, len(rec.ChainIDs)+1)
	for _, c := range slices.Backward(rec.ChainIDs) {
		lowers = append(lowers, filepath.Join(s.snapshotPath(c), "fs"))
	}
	// Without an upper dir overlayfs needs two lower dirs: an empty one
	// below a single-layer image changes nothing that is seen.
	if len(lowers) < 2 {
		empty := filepath.Join(s.containerDir(key), "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", fmt.Errorf("create image volume dirs: %w", err)
		}
		lowers = append(lowers, empty)
	}
	if err := mountOverlay(lowers, "", "", target); err != nil {
		return "", fmt.Errorf("mount image volume %d of %s: %w", n, containerID, err)
	}
	s.log.Debug("image volume mounted", "container", containerID, "volume", n, "image", rec.ImageID, "layers", len(rec.ChainIDs))
	return target, nil
}

// volumesOf lists the keys of containerID's image volumes.
func (s *Service) volumesOf(containerID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.rfs {
		if strings.HasPrefix(k, containerID+volumeSep) {
			keys = append(keys, k)
		}
	}
	return keys
}
