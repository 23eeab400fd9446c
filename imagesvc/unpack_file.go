package imagesvc

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// creds is what a file this process creates gets without being told.
type creds struct {
	uid, gid int
	// umask, or 0o777 when it could not be read (then every file is
	// chmod'ed).
	umask uint32
}

func currentCreds() creds {
	return creds{uid: os.Geteuid(), gid: os.Getegid(), umask: readUmask()}
}

// readUmask reads the umask from /proc: umask(2) can only read it by
// setting it, which would race with other threads creating files.
func readUmask() uint32 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32)
			if err != nil {
				return 0o777
			}
			return uint32(m)
		}
	}
	return 0o777
}

// plainDir reports whether new entries in the open directory fd get this
// process's egid and a mode only the umask shapes.
func (c creds) plainDir(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || int(st.Gid) != c.gid || st.Mode&unix.S_ISGID != 0 {
		return false
	}
	_, err := unix.Fgetxattr(fd, "system.posix_acl_default", nil)
	return errors.Is(err, unix.ENODATA)
}

// plainHeader reports whether a directory given these attributes is plain:
// no set-gid bit, egid as group, and no xattrs (a default ACL among them
// would shape the mode of new files instead of the umask).
func (c creds) plainHeader(hdr *tar.Header, mode uint32) bool {
	return mode&unix.S_ISGID == 0 && hdr.Gid == c.gid && len(xattrs(hdr)) == 0
}

// needChown and needChmod say whether a file just created in a plain dir
// with mode still lacks what hdr asks for.
func (c creds) needChown(hdr *tar.Header) bool { return hdr.Uid != c.uid || hdr.Gid != c.gid }

func (c creds) needChmod(mode uint32) bool { return mode&^0o777 != 0 || mode&c.umask != 0 }

// file creates a regular file with O_EXCL (so the common case costs no
// stat: only a name that exists is cleared first) and writes it with raw
// syscalls: open, write, [fchown], [fchmod], utimensat, close.
func (u *unpacker) file(pfd int, dirRel, rel, base string, hdr *tar.Header, mode uint32, r io.Reader) error {
	const flags = unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, base, flags, mode&0o777)
	if errors.Is(err, unix.EEXIST) {
		if err := u.clear(pfd, rel, base, false); err != nil {
			return err
		}
		fd, err = unix.Openat(pfd, base, flags, mode&0o777)
	}
	if err != nil {
		return fmt.Errorf("create %q: %w", rel, err)
	}
	defer unix.Close(fd)
	if err := u.copyTo(fd, r, hdr.Size); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errdefs.FailedPrecondition("layer entry %q is truncated", hdr.Name)
		}
		return fmt.Errorf("write %q: %w", rel, err)
	}
	u.usage.Bytes += hdr.Size
	// In a plain dir, open gave the file the owner and mode it asks for.
	if !u.plain[dirRel] || u.creds.needChown(hdr) || u.creds.needChmod(mode) || len(hdr.PAXRecords) > 0 {
		if err := u.attrs(fd, hdr, mode); err != nil {
			return fmt.Errorf("set attributes of %q: %w", rel, err)
		}
	}
	ts := times(hdr)
	return unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// copyTo writes exactly n bytes of r to fd.
func (u *unpacker) copyTo(fd int, r io.Reader, n int64) error {
	for n > 0 {
		m, err := io.ReadAtLeast(r, u.buf[:min(int64(len(u.buf)), n)], 1)
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		for b := u.buf[:m]; len(b) > 0; {
			w, err := unix.Write(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			b = b[w:]
		}
		n -= int64(m)
	}
	return nil
}

// attrs sets owner, then mode (chown clears set-id bits), then xattrs, on
// an open file or directory.
func (u *unpacker) attrs(fd int, hdr *tar.Header, mode uint32) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	for k, v := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	return nil
}
