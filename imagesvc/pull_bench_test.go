package imagesvc

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkPullFromRegistry pulls IMAGESVC_BENCH_REF (e.g. the big image
// hack/bench-images.sh pushes to a registry on 127.0.0.1) into a fresh store
// per iteration: download, verify, decompress, unpack and the final syncfs,
// without the gRPC layer. For pprof profiles of a pull:
//
//	IMAGESVC_BENCH_REF=127.0.0.1:PORT/bench/big:1 go test -run x -bench PullFromRegistry \
//	  -benchtime 3x -cpuprofile cpu.out -blockprofile block.out ./imagesvc
func BenchmarkPullFromRegistry(b *testing.B) {
	ref := os.Getenv("IMAGESVC_BENCH_REF")
	if ref == "" {
		b.Skip("IMAGESVC_BENCH_REF names no image to pull")
	}
	// IMAGESVC_BENCH_DIR keeps the stores: on ext4 without a journal, inode
	// allocation is slow for ~30 s after mass deletes, so a run that deletes
	// the last one's files measures that instead.
	dir := b.TempDir()
	if keep := os.Getenv("IMAGESVC_BENCH_DIR"); keep != "" {
		var err error
		if dir, err = os.MkdirTemp(keep, "pull-"); err != nil {
			b.Fatal(err)
		}
	}
	var bytes uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := filepath.Join(dir, fmt.Sprint(i))
		var out io.Writer = io.Discard
		if testing.Verbose() {
			out = os.Stderr
		}
		s, err := New(Options{Root: filepath.Join(root, "root"), State: filepath.Join(root, "state"),
			Log: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		img, err := s.Pull(b.Context(), ref, Auth{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/pull")
		bytes = img.Size
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.SetBytes(int64(bytes))
}
