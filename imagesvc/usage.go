package imagesvc

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
