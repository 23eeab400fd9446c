package monitor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type rec struct{ stream, tag, content string }

func parseLog(t testing.TB, path string) []rec {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rec
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed record %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("bad timestamp in %q: %v", sc.Text(), err)
		}
		out = append(out, rec{parts[1], parts[2], parts[3]})
	}
	return out
}

func TestLogFormat(t *testing.T) {
	long := strings.Repeat("x", 20<<10)
	exact := strings.Repeat("y", MaxLineSize)
	for _, tc := range []struct {
		name   string
		stream string
		input  string
		want   []rec
	}{
		{name: "lines", stream: "stdout", input: "a\nb\n", want: []rec{{"stdout", "F", "a"}, {"stdout", "F", "b"}}},
		{name: "empty line", stream: "stdout", input: "\n", want: []rec{{"stdout", "F", ""}}},
		{name: "crlf from a tty", stream: "stdout", input: "a\r\nb\rc\n", want: []rec{{"stdout", "F", "a"}, {"stdout", "F", "b\rc"}}},
		{name: "no newline at end", stream: "stderr", input: "a\nlast", want: []rec{{"stderr", "F", "a"}, {"stderr", "F", "last"}}},
		{name: "20 KiB line split", stream: "stdout", input: long + "\nz\n",
			want: []rec{{"stdout", "P", long[:MaxLineSize]}, {"stdout", "F", long[MaxLineSize:]}, {"stdout", "F", "z"}}},
		{name: "line of exactly the buffer", stream: "stdout", input: exact + "\n",
			want: []rec{{"stdout", "P", exact}, {"stdout", "F", ""}}},
		{name: "nothing", stream: "stdout", input: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.log")
			l, err := OpenLog(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Copy(tc.stream, strings.NewReader(tc.input)); err != nil {
				t.Fatal(err)
			}
			l.Close()
			got := parseLog(t, path)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d records, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("record %d: %s %s len %d, want %s %s len %d", i, got[i].stream, got[i].tag, len(got[i].content),
						tc.want[i].stream, tc.want[i].tag, len(tc.want[i].content))
				}
			}
		})
	}
}

// numbered writes n numbered lines into a pipe and returns the read end.
func numbered(n int) io.Reader {
	r, w := io.Pipe()
	go func() {
		bw := bufio.NewWriter(w)
		for i := 0; i < n; i++ {
			fmt.Fprintf(bw, "line %09d %s\n", i, strings.Repeat("p", 80))
		}
		bw.Flush()
		w.Close()
	}()
	return r
}

func checkNumbered(t testing.TB, recs []rec, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("%d lines, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.tag != "F" || !strings.HasPrefix(r.content, fmt.Sprintf("line %09d ", i)) {
			t.Fatalf("line %d is %q", i, r.content[:min(20, len(r.content))])
		}
	}
}

// The kubelet rotates by renaming the file and calling ReopenContainerLog
// while the container writes; the old and new files together must hold
// every line once, in order.
func TestReopenLosesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	l, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200000
	done := make(chan error)
	go func() { done <- l.Copy("stdout", numbered(n)) }()
	var rotated []string
	for i := 0; ; i++ {
		select {
		case err := <-done:
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(rotated) < 3 {
				t.Fatalf("only %d rotations happened during output", len(rotated))
			}
			var all []rec
			for _, p := range append(rotated, path) {
				all = append(all, parseLog(t, p)...)
			}
			checkNumbered(t, all, n)
			return
		default:
		}
		old := filepath.Join(dir, fmt.Sprintf("c.log.%d", i))
		if err := os.Rename(path, old); err != nil {
			t.Fatal(err)
		}
		if err := l.Reopen(); err != nil {
			t.Fatal(err)
		}
		rotated = append(rotated, old)
		time.Sleep(2 * time.Millisecond)
	}
}

// A rotation that comes after the output ended (the container is exiting,
// its exit not yet recorded) succeeds and creates nothing.
func TestReopenAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Errorf("reopen of a closed log: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("reopen of a closed log created %s (%v)", path, err)
	}
}

// 100 MB written as fast as a pipe takes it: not a line lost.
func TestHundredMegabytesNoLineLost(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB")
	}
	path := filepath.Join(t.TempDir(), "c.log")
	l, err := OpenLog(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100 << 20 / 100 // 100-byte lines
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		io.Copy(pw, numbered(n))
		pw.Close()
	}()
	if err := l.Copy("stdout", pr); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	l.Close()
	checkNumbered(t, parseLog(t, path), n)
}

func BenchmarkLogCopy(b *testing.B) {
	path := filepath.Join(b.TempDir(), "c.log")
	l, err := OpenLog(path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	line := strings.Repeat("b", 99) + "\n"
	data := []byte(strings.Repeat(line, 10000))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		pr, pw, _ := os.Pipe()
		go func() { pw.Write(data); pw.Close() }()
		l.Copy("stdout", pr)
		pr.Close()
	}
}
