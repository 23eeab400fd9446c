package imagesvc

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkUnpack unpacks a 60 MB layer of 4,000 files of 15 KB (one layer
// of the benchmark image) from memory: the unpacker's own cost,
// without network or decompression. Compare with GNU tar in
// hack/bench-images.sh.
func BenchmarkUnpack(b *testing.B) {
	if testing.Short() {
		b.Skip("writes 60 MB per iteration")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := make([]byte, 15<<10)
	for d := 0; d < 40; d++ {
		for f := 0; f < 100; f++ {
			rand.Read(data)
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", d, f), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
			tw.Write(data)
		}
	}
	tw.Close()
	layer := buf.Bytes()
	dir := b.TempDir()
	b.SetBytes(int64(len(layer)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := unpack(bytes.NewReader(layer), mkdirT(b, filepath.Join(dir, fmt.Sprint(i)))); err != nil {
			b.Fatal(err)
		}
	}
}

func mkdirT(b *testing.B, p string) string {
	if err := os.MkdirAll(p, 0o755); err != nil {
		b.Fatal(err)
	}
	return p
}
