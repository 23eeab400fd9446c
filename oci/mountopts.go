package oci

import (
	"strings"

	"golang.org/x/sys/unix"
)

type mountOpts struct {
	flags     uintptr
	propFlags []uintptr
	data      []string
	rec       *unix.MountAttr // recursive attributes (rro, rnosuid, ...) via mount_setattr
}

var flagOpts = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY}, "nosuid": {false, unix.MS_NOSUID},
	"suid": {true, unix.MS_NOSUID}, "nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC}, "sync": {false, unix.MS_SYNCHRONOUS},
	"async": {true, unix.MS_SYNCHRONOUS}, "dirsync": {false, unix.MS_DIRSYNC}, "remount": {false, unix.MS_REMOUNT},
	"mand": {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK}, "atime": {true, unix.MS_NOATIME},
	"noatime": {false, unix.MS_NOATIME}, "diratime": {true, unix.MS_NODIRATIME}, "nodiratime": {false, unix.MS_NODIRATIME},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC}, "relatime": {false, unix.MS_RELATIME},
	"norelatime": {true, unix.MS_RELATIME}, "strictatime": {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME}, "silent": {false, unix.MS_SILENT}, "loud": {true, unix.MS_SILENT},
}

var propOpts = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

var recAttrs = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro": {false, unix.MOUNT_ATTR_RDONLY}, "rrw": {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid": {false, unix.MOUNT_ATTR_NOSUID}, "rsuid": {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev": {false, unix.MOUNT_ATTR_NODEV}, "rdev": {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec": {false, unix.MOUNT_ATTR_NOEXEC}, "rexec": {true, unix.MOUNT_ATTR_NOEXEC},
	"rnoatime": {false, unix.MOUNT_ATTR_NOATIME}, "rrelatime": {false, unix.MOUNT_ATTR_RELATIME},
	"rstrictatime": {false, unix.MOUNT_ATTR_STRICTATIME}, "rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

func parseMountOpts(opts []string) mountOpts {
	var m mountOpts
	for _, o := range opts {
		if f, ok := flagOpts[o]; ok {
			if f.clear {
				m.flags &^= f.flag
			} else {
				m.flags |= f.flag
			}
			continue
		}
		if p, ok := propOpts[o]; ok {
			m.propFlags = append(m.propFlags, p)
			continue
		}
		if a, ok := recAttrs[o]; ok {
			if m.rec == nil {
				m.rec = &unix.MountAttr{}
			}
			if a.clear {
				m.rec.Attr_clr |= a.attr
			} else {
				m.rec.Attr_set |= a.attr
			}
			continue
		}
		if o == "idmap" || o == "ridmap" || o == "tmpcopyup" {
			continue // handled by the caller / not supported (ignored like crun for tmpcopyup)
		}
		m.data = append(m.data, o)
	}
	return m
}

// statfsFlags returns the MS_ flags that are locked on a mount (in a user
// namespace a remount must keep them or fails with EPERM).
func statfsFlags(path string) uintptr {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return 0
	}
	var f uintptr
	for st0, ms := range map[int64]uintptr{unix.ST_RDONLY: unix.MS_RDONLY, unix.ST_NOSUID: unix.MS_NOSUID,
		unix.ST_NODEV: unix.MS_NODEV, unix.ST_NOEXEC: unix.MS_NOEXEC, unix.ST_NOATIME: unix.MS_NOATIME,
		unix.ST_NODIRATIME: unix.MS_NODIRATIME, unix.ST_RELATIME: unix.MS_RELATIME} {
		if st.Flags&st0 != 0 {
			f |= ms
		}
	}
	return f
}

func joinData(d []string) string { return strings.Join(d, ",") }
