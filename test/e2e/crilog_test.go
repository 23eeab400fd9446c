package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// logLine is one whole line of container output, put back together from
// its CRI log records.
type logLine struct {
	at      time.Time // the record that ended it (F)
	stream  string
	content []byte // valid until the next line is read
	records int    // 1 + the P records before the F
}

// readCRILog reads the CRI log files in order as one stream, as the kubelet
// reads a rotated log, and calls fn for each whole line. It fails on
// anything the kubelet's parser would refuse: a record that is not
// "<RFC3339Nano> <stdout|stderr> <P|F> <content>", a torn record at a file's
// end, timestamps going back within a stream.
func readCRILog(paths []string, fn func(logLine) error) error {
	var partial [2][]byte // per stream: content of P records so far
	var nparts [2]int
	var last time.Time
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		br := bufio.NewReaderSize(f, 1<<20)
		for n := 1; ; n++ {
			rec, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				f.Close()
				return fmt.Errorf("%s:%d: record longer than 1 MiB", path, n)
			}
			if err == io.EOF {
				if len(rec) > 0 {
					f.Close()
					return fmt.Errorf("%s:%d: torn record at end of file: %.80q", path, n, rec)
				}
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			rec = rec[:len(rec)-1]
			ts, rest, ok := bytes.Cut(rec, []byte(" "))
			stream, rest, ok2 := bytes.Cut(rest, []byte(" "))
			tag, content, ok3 := bytes.Cut(rest, []byte(" "))
			if !ok || !ok2 || !ok3 {
				f.Close()
				return fmt.Errorf("%s:%d: not a CRI log record: %.80q", path, n, rec)
			}
			at, err := time.Parse(time.RFC3339Nano, string(ts))
			if err != nil {
				f.Close()
				return fmt.Errorf("%s:%d: timestamp: %v", path, n, err)
			}
			if at.Before(last) {
				f.Close()
				return fmt.Errorf("%s:%d: timestamp %s before the previous record's %s", path, n, at, last)
			}
			last = at
			s := 0
			switch string(stream) {
			case "stdout":
			case "stderr":
				s = 1
			default:
				f.Close()
				return fmt.Errorf("%s:%d: stream %q", path, n, stream)
			}
			switch string(tag) {
			case "P":
				partial[s] = append(partial[s], content...)
				nparts[s]++
				continue
			case "F":
			default:
				f.Close()
				return fmt.Errorf("%s:%d: tag %q, want P or F", path, n, tag)
			}
			line := logLine{at: at, stream: string(stream), content: content, records: nparts[s] + 1}
			if nparts[s] > 0 {
				line.content = append(partial[s], content...)
				partial[s], nparts[s] = partial[s][:0], 0
			}
			if err := fn(line); err != nil {
				f.Close()
				return fmt.Errorf("%s:%d: %w", path, n, err)
			}
		}
		f.Close()
	}
	for s, p := range nparts {
		if p > 0 {
			return fmt.Errorf("%d partial records of %s never ended by an F record", p, []string{"stdout", "stderr"}[s])
		}
	}
	return nil
}

// logLines reads whole lines of the log files, copied.
func logLines(paths ...string) ([]logLine, error) {
	var out []logLine
	err := readCRILog(paths, func(l logLine) error {
		l.content = bytes.Clone(l.content)
		out = append(out, l)
		return nil
	})
	return out, err
}
