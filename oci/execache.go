package oci

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cri-server/cri-server/errdefs"
)

// CachedBinary returns the path of content (an executable identified by
// digest, e.g. cri-server's embedded shim) as a file in dir, writing it
// there on first use. It is for short-lived callers such as the command
// line, for which SealBinary's copy of the 7.5 MB shim into a memfd would
// cost ~4 ms at each start, about a whole create: the file is written once and then
// reused, and the Runtime given it as Config.InitBinary still executes it
// only through a read-only detached mount (sealedExe).
//
// The file is executed as the caller, so dir's parent, dir and the file must
// be the caller's and writable by nobody else (the same rule as
// cmd/cri-server's constructor, which execs it): a cache in a directory
// others can write to is refused, never trusted. A file of the wrong size
// (a write cut short) is replaced, through a temporary file and a rename,
// so concurrent callers never execute a partial file; the cached binaries
// of other digests (older builds) are removed then.
func CachedBinary(dir, digest string, content []byte) (string, error) {
	if len(content) == 0 || digest == "" || strings.ContainsAny(digest, "/.") {
		return "", errdefs.InvalidArgument("cached binary: empty content or bad digest %q", digest)
	}
	if err := private(os.Stat(filepath.Dir(dir))); err != nil {
		return "", fmt.Errorf("binary cache %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("create binary cache: %w", err)
	}
	if err := private(os.Lstat(dir)); err != nil {
		return "", fmt.Errorf("binary cache %s: %w", dir, err)
	}
	p := filepath.Join(dir, digest)
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Size() == int64(len(content)) &&
		fi.Mode().Perm() == cachedMode && private(fi, nil) == nil {
		return p, nil
	}
	if err := writeCached(dir, digest, content); err != nil {
		return "", err
	}
	pruneCache(dir, digest)
	return p, nil
}

// cachedMode lets anyone execute the cached binary and nobody write it:
// an init in a new user namespace that does not map the file's owner sees
// it as nobody's, and may execute it only through the "other" bits.
const cachedMode = 0o555

// private accepts a directory or regular file owned by us that nobody else
// may write to.
func private(fi fs.FileInfo, err error) error {
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 || !(fi.IsDir() || fi.Mode().IsRegular()) {
		return errdefs.New(errdefs.ErrPermissionDenied, "%s is not ours alone (mode %v)", fi.Name(), fi.Mode())
	}
	return nil
}

func writeCached(dir, digest string, content []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+digest+"-*")
	if err != nil {
		return fmt.Errorf("create cached binary: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(content)
	if err == nil {
		err = f.Chmod(cachedMode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, digest))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write cached binary: %w", err)
	}
	return nil
}

// pruneCache removes the binaries of other digests. One being executed
// stays alive for its processes; a command line that was about to exec it
// finds it gone and runs itself instead.
func pruneCache(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() != keep && !strings.HasPrefix(e.Name(), ".tmp-") && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
