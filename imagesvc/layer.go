package imagesvc

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

// fetchLayer downloads one layer blob and unpacks it in the same pass (see
// ingestLayer). Nothing becomes visible unless the blob's digest and size
// and the tar's diff id all match.
func (s *Service) fetchLayer(ctx context.Context, src *blobSource, lr layerRecord) error {
	snap := s.snapshotPath(lr.ChainID)
	if exists(snap) && (!s.opts.KeepLayerBlobs || exists(s.blobPath(lr.Digest))) {
		return nil
	}
	rc, err := src.open(ctx, lr.Digest, lr.Size)
	if err != nil {
		return err
	}
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	err = s.ingestLayer(rc, lr)
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// chunk is what the decompressor hands the unpacker at once: big enough
// that the two goroutines meet a few hundred times per 100 MB, not once
// per 32 KB deflate window.
const chunk = 1 << 20

// ingestLayer is fetchLayer after the request: r is the compressed stream.
// Two goroutines share the work so that one layer can use two cores: this
// one reads the network, hashes the blob (the only hash of it: blobSource
// does not verify), decompresses and hashes the tar; the other parses the
// tar and creates the files.
func (s *Service) ingestLayer(r io.ReadCloser, lr layerRecord) error {
	var tmpBlob *os.File
	if s.opts.KeepLayerBlobs {
		f, err := os.CreateTemp(filepath.Join(s.opts.Root, "ingest"), "blob-")
		if err != nil {
			return fmt.Errorf("create ingest file: %w", err)
		}
		defer func() { f.Close(); os.Remove(f.Name()) }()
		tmpBlob = f
	}
	tmpSnap := filepath.Join(s.opts.Root, "snapshots", ".tmp-"+randHex())
	if err := os.MkdirAll(filepath.Join(tmpSnap, "fs"), 0o755); err != nil {
		return fmt.Errorf("create snapshot: %w", err)
	}
	defer os.RemoveAll(tmpSnap) // a no-op once renamed

	blobHash, diffHash := sha256.New(), sha256.New()
	cnt := &counter{}
	tee := io.TeeReader(r, io.MultiWriter(blobHash, cnt))
	var bw *bufio.Writer
	if tmpBlob != nil {
		bw = bufio.NewWriterSize(tmpBlob, chunk)
		tee = io.TeeReader(r, io.MultiWriter(bw, blobHash, cnt))
	}
	pr, pw := io.Pipe()
	derr := make(chan error, 1)
	go func() {
		out := bufio.NewWriterSize(io.MultiWriter(diffHash, pw), chunk)
		err := decompress(tee, out)
		if err == nil {
			err = out.Flush()
		}
		pw.CloseWithError(err)
		derr <- err
	}()
	in := bufio.NewReaderSize(pr, chunk)
	usage, uerr := unpack(in, filepath.Join(tmpSnap, "fs"))
	if uerr == nil {
		_, uerr = io.Copy(io.Discard, in) // tar padding, hashed by the decompressor
	}
	pr.CloseWithError(errUnpackStopped)
	if uerr != nil {
		r.Close() // unblocks the decompressor if it waits on the network
		<-derr
		return uerr
	}
	if err := <-derr; err != nil {
		return err
	}
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write blob: %w", err)
		}
	}
	if got := sum(blobHash); got != lr.Digest || cnt.n != lr.Size {
		return errdefs.FailedPrecondition("blob has digest %s size %d, manifest says %s size %d", got, cnt.n, lr.Digest, lr.Size)
	}
	if got := sum(diffHash); got != lr.DiffID {
		return errdefs.FailedPrecondition("uncompressed layer has digest %s, image config says %s", got, lr.DiffID)
	}
	uj, _ := json.Marshal(usage)
	if err := os.WriteFile(filepath.Join(tmpSnap, "usage.json"), uj, 0o600); err != nil {
		return fmt.Errorf("write snapshot usage: %w", err)
	}
	if !exists(s.snapshotPath(lr.ChainID)) {
		if err := os.Rename(tmpSnap, s.snapshotPath(lr.ChainID)); err != nil {
			return fmt.Errorf("commit snapshot: %w", err)
		}
	}
	if tmpBlob != nil {
		if err := os.Rename(tmpBlob.Name(), s.blobPath(lr.Digest)); err != nil {
			return fmt.Errorf("commit blob: %w", err)
		}
	}
	return nil
}

// decompress streams r, decompressed by its magic number (media types lie),
// to the pipe's writer. It runs in its own goroutine so that decompression
// and unpacking use two cores.
func decompress(r io.Reader, w io.Writer) error {
	er := &errReader{r: r}
	br := bufio.NewReaderSize(er, chunk)
	magic, _ := br.Peek(4)
	var src io.Reader = br
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return errdefs.FailedPrecondition("read gzip layer: %v", err)
		}
		defer zr.Close()
		src = zr
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("read zstd layer: %w", err)
		}
		defer zr.Close()
		src = zr
	}
	if _, err := io.CopyBuffer(w, src, make([]byte, 256<<10)); err != nil {
		if er.err != nil {
			return fmt.Errorf("read layer: %w", er.err)
		}
		if errors.Is(err, io.ErrClosedPipe) || errors.Is(err, errUnpackStopped) {
			return fmt.Errorf("decompress layer: %w", err)
		}
		// Neither the network nor the unpacker: the data is bad.
		return errdefs.FailedPrecondition("decompress layer: %v", err)
	}
	// The digest covers the whole blob, trailing bytes included.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	return nil
}

var errUnpackStopped = errors.New("unpack stopped")

// errReader remembers the error its reader returned, so that a network
// failure is not taken for corrupt data.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func sum(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// syncfsPath flushes the filesystem holding p. A pull calls it once, after
// every layer is in place and before the record commits: syncfs covers the
// whole filesystem, so one call makes all layers durable, where an fsync per
// file would cost a disk flush each, and a syncfs per parallel layer would
// flush the other layers' half-written files again and again.
func syncfsPath(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s for sync: %w", p, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs: %w", err)
	}
	return nil
}

// writeBlob stores small verified blobs (manifests, configs).
func (s *Service) writeBlob(digest string, data []byte) error {
	if got := digestOf(data); got != digest {
		return errdefs.FailedPrecondition("blob has digest %s, want %s", got, digest)
	}
	p := s.blobPath(digest)
	if exists(p) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.opts.Root, "ingest"), "blob-")
	if err != nil {
		return fmt.Errorf("create ingest file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write blob: %w", err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	return nil
}
