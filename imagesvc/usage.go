package imagesvc

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cri-server/cri-server/errdefs"
)

// Usage is the bytes and inodes a filesystem area uses.
type Usage struct {
	Mountpoint string
	Bytes      uint64
	Inodes     uint64
}

// ImageFsUsage sums blobs and snapshots. Snapshot sizes were counted when
// unpacking, so this never walks the layers.
func (s *Service) ImageFsUsage() Usage {
	u := Usage{Mountpoint: s.opts.Root}
	ents, _ := os.ReadDir(filepath.Join(s.opts.Root, "blobs", "sha256"))
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			u.Bytes += uint64(fi.Size())
			u.Inodes++
		}
	}
	ents, _ = os.ReadDir(filepath.Join(s.opts.Root, "snapshots"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.opts.Root, "snapshots", e.Name(), "usage.json"))
		var su usage
		if err == nil && json.Unmarshal(data, &su) == nil {
			u.Bytes += uint64(su.Bytes)
			u.Inodes += uint64(su.Inodes)
		}
	}
	return u
}

// ContainerFsUsage walks the containers' writable layers, which are small
// (logs and volumes live elsewhere).
func (s *Service) ContainerFsUsage() Usage {
	dir := filepath.Join(s.opts.Root, "containers")
	u := Usage{Mountpoint: dir}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		u.Inodes++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				u.Bytes += uint64(fi.Size())
			}
		}
		return nil
	})
	return u
}

// WritableLayerUsage walks one container's upper dir: what the container
// wrote. Mountpoint is the containers' area, as ContainerFsUsage reports
// it, so the kubelet matches it with ImageFsInfo's container filesystem.
func (s *Service) WritableLayerUsage(containerID string) (Usage, error) {
	if containerID == "" || containerID != filepath.Base(containerID) || containerID[0] == '.' {
		return Usage{}, errdefs.InvalidArgument("container id %q is not valid", containerID)
	}
	u := Usage{Mountpoint: filepath.Join(s.opts.Root, "containers")}
	upper := filepath.Join(s.containerDir(containerID), "upper")
	if _, err := os.Lstat(upper); err != nil {
		if os.IsNotExist(err) {
			return u, errdefs.NotFound("writable layer of %s", containerID)
		}
		return u, fmt.Errorf("stat writable layer of %s: %w", containerID, err)
	}
	filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == upper {
			return nil
		}
		u.Inodes++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				u.Bytes += uint64(fi.Size())
			}
		}
		return nil
	})
	return u, nil
}
