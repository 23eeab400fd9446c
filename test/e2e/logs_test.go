package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The output of TestLogsNoLineLost: line i is "%08d " and a run of x, 100
// bytes in all, or 40000 bytes every longEvery lines, so that those cross
// the monitor's 16 KiB line buffer and come out as P records. Every
// errEvery-th line goes to stderr: two pipes into one log file.
const (
	floodLines = 1_000_000
	longEvery  = 5000
	errEvery   = 3
	shortLen   = 100
	longLen    = 40000
)

// floodScript prints floodLines numbered lines as fast as busybox awk can
// (about 109 MB: stdio buffers a pipe fully).
var floodScript = fmt.Sprintf(`BEGIN {
  s = sprintf("%%%ds", ""); gsub(/ /, "x", s)
  l = sprintf("%%%ds", ""); gsub(/ /, "x", l)
  for (i = 1; i <= %d; i++) {
    x = (i %% %d == 0) ? l : s
    if (i %% %d == 0) printf "%%08d %%s\n", i, x > "/dev/stderr"; else printf "%%08d %%s\n", i, x
  }
}`, shortLen-10, longLen-10, floodLines, longEvery, errEvery)

func floodLine(i int) []byte {
	n := shortLen
	if i%longEvery == 0 {
		n = longLen
	}
	b := fmt.Appendf(nil, "%08d ", i)
	return append(b, bytes.Repeat([]byte("x"), n-len(b)-1)...)
}

// TestLogsNoLineLost floods a container's log while rotating it the
// kubelet's way (rename, then ReopenContainerLog) as often as it can: the
// rotated files and the last one, read in order, hold every line once, in
// order, as valid CRI records, long lines put back together from their P
// records.
func TestLogsNoLineLost(t *testing.T) {
	requireE2E(t)
	c := privateServer(t)
	c.pull(t, busybox)
	p := c.runPod(t, "flood")
	id := c.create(t, p, "flood", []string{"awk", floodScript}, nil)
	logPath := filepath.Join(p.logDir, "flood.log")
	c.start(t, id)

	var files []string
	begin := time.Now()
	for n := 1; ; n++ {
		time.Sleep(20 * time.Millisecond)
		if st, _ := c.status(t, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
			break
		}
		if time.Since(begin) > 45*time.Second {
			t.Fatal("flood still running after 45s")
		}
		rotated := logPath + "." + strconv.Itoa(n)
		if err := os.Rename(logPath, rotated); err != nil {
			t.Fatalf("rotate: %v", err)
		}
		files = append(files, rotated)
		_, err := c.rt.ReopenContainerLog(ctx(t), &runtime.ReopenContainerLogRequest{ContainerId: id})
		if status.Code(err) == codes.FailedPrecondition {
			break // exited between the check and the rename: nothing more comes
		}
		if err != nil {
			t.Fatalf("reopen log after rotation %d: %v", n, err)
		}
	}
	st := c.waitState(t, id, runtime.ContainerState_CONTAINER_EXITED, 10*time.Second)
	if st.ExitCode != 0 {
		t.Fatalf("flood exited %d (%s): %s", st.ExitCode, st.Reason, st.Message)
	}
	if len(files) < 3 {
		t.Fatalf("the flood ended after %d rotations (%v), want at least 3 during the output", len(files), time.Since(begin))
	}
	if _, err := os.Stat(logPath); err == nil {
		files = append(files, logPath)
	}

	// Each stream's lines in order; the two streams' relative order is
	// lost between the two pipes.
	next := map[string]int{"stdout": 1, "stderr": errEvery}
	lines, long, size := 0, 0, int64(0)
	err := readCRILog(files, func(l logLine) error {
		i := next[l.stream]
		if want := floodLine(i); !bytes.Equal(l.content, want) {
			return fmt.Errorf("%s line %.20q (%d bytes), want line %d", l.stream, l.content, len(l.content), i)
		}
		if len(l.content) > 16<<10 {
			long++
			if l.records < 2 {
				return fmt.Errorf("line %d of %d bytes in one record", i, len(l.content))
			}
		}
		if next[l.stream]++; l.stream == "stdout" && next["stdout"]%errEvery == 0 {
			next["stdout"]++
		} else if l.stream == "stderr" {
			next["stderr"] += errEvery - 1
		}
		lines++
		size += int64(len(l.content)) + 1
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if lines != floodLines {
		t.Errorf("%d lines in the log (next stdout %d, stderr %d), want %d", lines, next["stdout"], next["stderr"], floodLines)
	}
	if long != floodLines/longEvery {
		t.Errorf("%d long lines, want %d", long, floodLines/longEvery)
	}
	t.Logf("%d MB in %d files, %v", size>>20, len(files), time.Since(begin).Round(time.Millisecond))
}
