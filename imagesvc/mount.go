package imagesvc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// rootfsRecord ties a container's writable layer to the snapshots under it,
// so that removing the image never frees a snapshot a container still uses.
type rootfsRecord struct {
	Container string
	ImageID   string
	ChainIDs  []string
}

// RootfsPath is where Mount mounts containerID's rootfs.
func (s *Service) RootfsPath(containerID string) string {
	return filepath.Join(s.opts.State, "rootfs", containerID)
}

func (s *Service) containerDir(containerID string) string {
	return filepath.Join(s.opts.Root, "containers", containerID)
}

// Mount mounts an overlay of imageID's snapshots with a fresh upper dir for
// containerID and returns the mount point. Mounting again returns the same
// path (the upper dir of an earlier Mount is kept: a daemon restart must not
// lose the container's writes).
func (s *Service) Mount(imageID, containerID string) (string, error) {
	if containerID == "" || containerID != filepath.Base(containerID) || containerID[0] == '.' {
		return "", errdefs.InvalidArgument("container id %q is not valid", containerID)
	}
	// Not waiting for the disk here: a crash before the container's own
	// record is written leaves its bundle dir (made before this), and the
	// start-up sweep removes that container's rootfs, record or not
	// (Remove). The container's record, synced, makes this one durable.
	rec, err := s.holdRecord(containerID, imageID, false)
	if err != nil {
		return "", err
	}
	target := s.RootfsPath(containerID)
	if mounted(target) {
		return target, nil
	}
	cdir := s.containerDir(containerID)
	upper, work := filepath.Join(cdir, "upper"), filepath.Join(cdir, "work")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create rootfs dirs: %w", err)
		}
	}
	lowers := make([]string, 0, len(rec.ChainIDs)+1)
	for _, c := range slices.Backward(rec.ChainIDs) {
		lowers = append(lowers, filepath.Join(s.snapshotPath(c), "fs"))
	}
	if len(lowers) == 0 { // an image without layers: overlay needs one lower
		empty := filepath.Join(cdir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", fmt.Errorf("create rootfs dirs: %w", err)
		}
		lowers = append(lowers, empty)
	}
	if err := mountOverlay(lowers, upper, work, target); err != nil {
		return "", fmt.Errorf("mount rootfs of %s: %w", containerID, err)
	}
	s.log.Debug("rootfs mounted", "container", containerID, "image", rec.ImageID, "layers", len(rec.ChainIDs))
	return target, nil
}

// hold records that key (a container, or one of its image volumes) uses
// imageID's snapshots, or returns the record made earlier.
func (s *Service) hold(key, imageID string) (*rootfsRecord, error) {
	return s.holdRecord(key, imageID, true)
}

// holdRecord is hold; durable false returns before the record reaches the
// disk (store.PutUnsynced).
func (s *Service) holdRecord(key, imageID string, durable bool) (*rootfsRecord, error) {
	// Shared with GC: the record must be in place before a GC decides
	// what to keep, or after it has deleted.
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.rfs[key]; ok {
		return rec, nil
	}
	r, _, err := s.resolveLocked(imageID)
	if err != nil {
		return nil, err
	}
	rec := &rootfsRecord{Container: key, ImageID: r.ID}
	for _, l := range r.Layers {
		rec.ChainIDs = append(rec.ChainIDs, l.ChainID)
	}
	// Recorded before anything is created, so GC keeps the snapshots
	// and a crash leaves a record that Remove cleans.
	put := s.db.Put
	if !durable {
		put = s.db.PutUnsynced
	}
	if err := put(bucketRootfs, key, rec); err != nil {
		return nil, fmt.Errorf("record rootfs of %s: %w", key, err)
	}
	s.rfs[key] = rec
	return rec, nil
}

// mountOverlay uses the new mount API, which takes lower dirs one by one
// ("lowerdir+", Linux 6.8): the old mount(2) data string is one page, which
// deep images with long paths overflow.
func mountOverlay(lowers []string, upper, work, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
			return fmt.Errorf("overlay lowerdir %s: %w", l, err)
		}
	}
	for _, kv := range [][2]string{{"upperdir", upper}, {"workdir", work}} {
		if kv[1] == "" { // no upper: a read-only overlay (image volumes)
			continue
		}
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("overlay %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	attr := 0
	if upper == "" { // read-only at the mount too, not only for lack of an upper dir
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move overlay to %s: %w", target, err)
	}
	return nil
}

// mounted reports whether p is a mount point (its mount id differs from
// its parent's).
func mounted(p string) bool {
	var st, pst unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st) != nil {
		return false
	}
	if unix.Statx(unix.AT_FDCWD, filepath.Dir(p), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &pst) != nil {
		return false
	}
	return st.Mnt_id != pst.Mnt_id
}

// Unmount unmounts containerID's rootfs and keeps its writable layer.
// Unmounting what is not mounted is not an error.
func (s *Service) Unmount(containerID string) error {
	target := s.RootfsPath(containerID)
	for mounted(target) {
		if err := unix.Unmount(target, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				// A process still holds it: detach now, freed when it exits.
				if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
					return fmt.Errorf("unmount rootfs of %s: %w", containerID, err)
				}
				continue
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				break
			}
			return fmt.Errorf("unmount rootfs of %s: %w", containerID, err)
		}
	}
	return nil
}

// Remove unmounts containerID's rootfs and image volumes, deletes its
// writable layer and releases the snapshots they held (freed if no image
// needs them). Removing an unknown container is not an error.
func (s *Service) Remove(containerID string) error {
	if containerID == "" || containerID != filepath.Base(containerID) || containerID[0] == '.' {
		return errdefs.InvalidArgument("container id %q is not valid", containerID)
	}
	freed := false
	for _, key := range append(s.volumesOf(containerID), containerID) {
		had, err := s.release(key)
		if err != nil {
			return err
		}
		freed = freed || had
	}
	if freed {
		return s.GC()
	}
	return nil
}

// release unmounts and deletes what Mount or MountImageVolume made for key
// and drops its record; it reports whether there was one.
func (s *Service) release(key string) (bool, error) {
	if err := s.Unmount(key); err != nil {
		return false, err
	}
	if err := os.Remove(s.RootfsPath(key)); err != nil && !os.IsNotExist(err) {
		return false, fmt.Errorf("remove rootfs mount point: %w", err)
	}
	if err := os.RemoveAll(s.containerDir(key)); err != nil {
		return false, fmt.Errorf("remove writable layer of %s: %w", key, err)
	}
	s.mu.Lock()
	_, had := s.rfs[key]
	delete(s.rfs, key)
	err := s.db.Delete(bucketRootfs, key)
	s.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("forget rootfs of %s: %w", key, err)
	}
	return had, nil
}
