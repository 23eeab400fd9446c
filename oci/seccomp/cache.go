package seccomp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// maxCached bounds the cache directory: a node sees a handful of profiles
// (the default one per capability set, the pods' localhost ones).
const maxCached = 256

// CompileCached is Compile with a cache of compiled programs in dir:
// libseccomp takes about 18 ms for the default profile, twice a runc
// start, and every container is created by a fresh monitor process, so an
// in-memory cache would never hit. The key covers the profile, the
// libseccomp version and the architecture, which are all the program
// depends on. dir must be writable by root only (the executor trusts what
// it reads there); "" compiles without a cache.
func CompileCached(dir string, s *specs.LinuxSeccomp) ([]byte, uint, error) {
	if dir == "" {
		return Compile(s)
	}
	js, err := json.Marshal(s)
	if err != nil {
		return nil, 0, fmt.Errorf("encode seccomp profile: %w", err)
	}
	maj, mnr, mic := libseccomp.GetLibraryVersion()
	h := sha256.New()
	h.Write(js)
	fmt.Fprintf(h, "\x00libseccomp %d.%d.%d %s", maj, mnr, mic, goruntime.GOARCH)
	path := filepath.Join(dir, hex.EncodeToString(h.Sum(nil)))
	if b, err := os.ReadFile(path); err == nil && len(b) > 8 && (len(b)-8)%8 == 0 {
		return b[8:], uint(binary.LittleEndian.Uint64(b[:8])), nil
	}
	bpf, flags, err := Compile(s)
	if err != nil {
		return nil, 0, err
	}
	store(dir, path, bpf, flags)
	return bpf, flags, nil
}

// store writes the entry atomically (a reader never sees half a program);
// a failure only costs the next create a compile, so it is not reported.
func store(dir, path string, bpf []byte, flags uint) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) >= maxCached {
		for _, e := range ents {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return
	}
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(flags))
	_, err1 := f.Write(append(hdr[:], bpf...))
	err2 := f.Close()
	if err1 != nil || err2 != nil || os.Rename(f.Name(), path) != nil {
		os.Remove(f.Name())
	}
}
