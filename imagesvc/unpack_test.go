package imagesvc

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

type ent struct {
	name, link, body string
	typ              byte
	mode             int64
	uid              int
}

func mkTar(t *testing.T, ents ...ent) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Uid: e.uid, Gid: e.uid}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &b
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, mknod, trusted xattrs, mounts)")
	}
}

// Hostile entries are refused and nothing lands outside the snapshot.
func TestUnpackHostile(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name string
		ents []ent
	}{
		{name: "dotdot", ents: []ent{{name: "../outside/pwned", body: "x"}}},
		{name: "absolute", ents: []ent{{name: "/outside/pwned", body: "x"}}},
		{name: "through planted symlink", ents: []ent{{name: "evil", link: "../outside", typ: tar.TypeSymlink}, {name: "evil/pwned", body: "x"}}},
		{name: "through absolute symlink", ents: []ent{{name: "evil", link: "/", typ: tar.TypeSymlink}, {name: "evil/tmp/pwned", body: "x"}}},
		{name: "hardlink out", ents: []ent{{name: "h", link: "../outside/target", typ: tar.TypeLink}}},
		{name: "hardlink through symlink", ents: []ent{{name: "evil", link: "../outside", typ: tar.TypeSymlink}, {name: "h", link: "evil/target", typ: tar.TypeLink}}},
		{name: "whiteout through symlink", ents: []ent{{name: "evil", link: "../outside", typ: tar.TypeSymlink}, {name: "evil/.wh.target", body: ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.MkdirAll(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "target"), []byte("keep"), 0o644)
			snap := filepath.Join(base, "snap")
			os.MkdirAll(snap, 0o755)
			_, err := unpack(mkTar(t, tc.ents...), snap)
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("unpack = %v; want a refusal", err)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 {
				t.Fatalf("something was written outside the snapshot: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "target")); string(b) != "keep" {
				t.Fatalf("outside file changed: %q", b)
			}
		})
	}
}

func TestUnpackPreserves(t *testing.T) {
	requireRoot(t)
	snap := t.TempDir()
	_, err := unpack(mkTar(t,
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "bin/su", body: "su", mode: 0o4755, uid: 0},
		ent{name: "home/u/f", body: "data", mode: 0o600, uid: 1234},
		ent{name: "bin/su2", link: "bin/su", typ: tar.TypeLink},
		ent{name: "lnk", link: "/etc/passwd", typ: tar.TypeSymlink},
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
	), snap)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(snap, "bin/su"), &st)
	if st.Mode&0o7777 != 0o4755 || st.Nlink != 2 {
		t.Errorf("bin/su mode %o nlink %d", st.Mode&0o7777, st.Nlink)
	}
	unix.Stat(filepath.Join(snap, "home/u/f"), &st)
	if st.Uid != 1234 || st.Mode&0o777 != 0o600 {
		t.Errorf("home/u/f uid %d mode %o", st.Uid, st.Mode&0o777)
	}
	if l, _ := os.Readlink(filepath.Join(snap, "lnk")); l != "/etc/passwd" {
		t.Errorf("symlink target %q", l)
	}
	unix.Lstat(filepath.Join(snap, "dev/null"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("dev/null mode %o", st.Mode)
	}
}

// Whiteouts and opaque dirs hide the lower layer's files in a real overlay.
func TestWhiteoutsHideLowerFiles(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	lower, upperLayer := filepath.Join(base, "l1"), filepath.Join(base, "l2")
	os.MkdirAll(lower, 0o755)
	os.MkdirAll(upperLayer, 0o755)
	if _, err := unpack(mkTar(t,
		ent{name: "etc/gone", body: "x"}, ent{name: "etc/kept", body: "k"},
		ent{name: "opq/", typ: tar.TypeDir, mode: 0o755}, ent{name: "opq/old", body: "o"},
		ent{name: "evil", link: "/tmp", typ: tar.TypeSymlink},
	), lower); err != nil {
		t.Fatal(err)
	}
	if _, err := unpack(mkTar(t,
		ent{name: "etc/.wh.gone"},
		ent{name: "opq/", typ: tar.TypeDir, mode: 0o755}, ent{name: "opq/.wh..wh..opq"}, ent{name: "opq/new", body: "n"},
		// A symlink planted by a lower layer is not followed: this lands in
		// the layer's own evil/ dir, which hides the symlink.
		ent{name: "evil/inside", body: "i"},
	), upperLayer); err != nil {
		t.Fatal(err)
	}
	mnt, up, work := filepath.Join(base, "m"), filepath.Join(base, "u"), filepath.Join(base, "w")
	for _, d := range []string{mnt, up, work} {
		os.MkdirAll(d, 0o755)
	}
	if err := mountOverlay([]string{upperLayer, lower}, up, work, mnt); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Unmount(mnt, 0); err != nil || mounted(mnt) {
			t.Errorf("overlay leaked: %v", err)
		}
	}()
	for _, tc := range []struct {
		name string
		path string
		want bool
	}{
		{"whiteout hides", "etc/gone", false},
		{"sibling stays", "etc/kept", true},
		{"opaque hides", "opq/old", false},
		{"opaque dir new file", "opq/new", true},
		{"dir over symlink", "evil/inside", true},
	} {
		_, err := os.Lstat(filepath.Join(mnt, tc.path))
		if (err == nil) != tc.want {
			t.Errorf("%s: %s exists=%v want %v", tc.name, tc.path, err == nil, tc.want)
		}
	}
	if _, err := os.Stat("/tmp/inside"); err == nil {
		t.Errorf("write went through the lower layer's symlink")
	}
}

// More directories than the fd cache holds: the root fd must survive the
// cache being flushed.
func TestUnpackManyDirs(t *testing.T) {
	requireRoot(t)
	defer func(n int) { maxDirFDs = n }(maxDirFDs)
	maxDirFDs = 16
	var ents []ent
	for i := 0; i < 42; i++ {
		ents = append(ents, ent{name: "d" + strconv.Itoa(i) + "/f", body: "x"})
	}
	snap := t.TempDir()
	u, err := unpack(mkTar(t, ents...), snap)
	if err != nil {
		t.Fatal(err)
	}
	if u.Inodes != 42 || u.Bytes != 42 {
		t.Fatalf("usage %+v", u)
	}
	if _, err := os.Stat(filepath.Join(snap, "d41", "f")); err != nil {
		t.Fatal(err)
	}
}

// posixACL is a system.posix_acl_default value: owner rwx, group and others
// nothing. Files created under it get mode bits from it, not the umask.
func posixACL() string {
	b := []byte{2, 0, 0, 0} // version
	for _, e := range [][2]uint16{{0x01, 7}, {0x04, 0}, {0x20, 0}} {
		b = append(b, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8), 0xff, 0xff, 0xff, 0xff)
	}
	return string(b)
}

// Files get the owner and mode their header says however the directory
// they land in would shape a new file: set-gid bits (also inherited by
// implicit subdirs), default ACLs, the umask.
func TestUnpackOwnerAndModeWhateverTheParent(t *testing.T) {
	requireRoot(t)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "sg/", Typeflag: tar.TypeDir, Mode: 0o2775, Gid: 1234},
		{Name: "sg/f", Mode: 0o644},
		{Name: "sg/sub/f", Mode: 0o644},
		{Name: "acl/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.system.posix_acl_default": posixACL()}},
		{Name: "acl/f", Mode: 0o644},
		{Name: "wide", Mode: 0o777},
		{Name: "sticky", Mode: 0o1755},
		{Name: "owned", Mode: 0o640, Uid: 7, Gid: 8},
		{Name: "plain", Mode: 0o644},
	} {
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	snap := t.TempDir()
	if _, err := unpack(&b, snap); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		mode       uint32
		uid, gid   uint32
	}{
		{name: "file in set-gid dir keeps its group", path: "sg/f", mode: 0o644},
		{name: "file in implicit subdir of set-gid dir", path: "sg/sub/f", mode: 0o644},
		{name: "file under a default ACL", path: "acl/f", mode: 0o644},
		{name: "bits the umask drops", path: "wide", mode: 0o777},
		{name: "sticky bit", path: "sticky", mode: 0o1755},
		{name: "other owner", path: "owned", mode: 0o640, uid: 7, gid: 8},
		{name: "plain", path: "plain", mode: 0o644},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(snap, tc.path), &st); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if st.Mode&0o7777 != tc.mode || st.Uid != tc.uid || st.Gid != tc.gid {
			t.Errorf("%s: %s mode %o uid %d gid %d; want %o %d %d", tc.name, tc.path, st.Mode&0o7777, st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
	}
}

// A later entry of one layer replaces an earlier one of the same name,
// whatever it was, and never writes through it.
func TestUnpackReplaces(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		first []ent
	}{
		{name: "file", first: []ent{{name: "x", body: "old"}}},
		{name: "dir with files", first: []ent{{name: "x/", typ: tar.TypeDir, mode: 0o755}, {name: "x/y", body: "y"}}},
		{name: "symlink to a file outside", first: []ent{{name: "x", link: "OUTSIDE", typ: tar.TypeSymlink}}},
		{name: "hardlink", first: []ent{{name: "h", body: "h"}, {name: "x", link: "h", typ: tar.TypeLink}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.WriteFile(outside, []byte("keep"), 0o644)
			snap := filepath.Join(base, "snap")
			os.MkdirAll(snap, 0o755)
			ents := append([]ent{}, tc.first...)
			for i := range ents {
				if ents[i].link == "OUTSIDE" {
					ents[i].link = outside
				}
			}
			ents = append(ents, ent{name: "x", body: "new", mode: 0o640})
			if _, err := unpack(mkTar(t, ents...), snap); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(snap, "x"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o777 != 0o640 || st.Nlink != 1 {
				t.Fatalf("x: %v mode %o nlink %d; want a regular file 640 of its own", err, st.Mode, st.Nlink)
			}
			if b, _ := os.ReadFile(filepath.Join(snap, "x")); string(b) != "new" {
				t.Errorf("x = %q", b)
			}
			if b, _ := os.ReadFile(outside); string(b) != "keep" {
				t.Errorf("written through the old entry: outside = %q", b)
			}
			if b, err := os.ReadFile(filepath.Join(snap, "h")); err == nil && string(b) != "h" {
				t.Errorf("hardlink target changed: %q", b)
			}
		})
	}
}
