package monitor

import (
	"bufio"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// MaxLineSize is where a long line is cut into partial (P) records, the
// kubelet's and containerd's default of 16 KiB.
const MaxLineSize = 16 << 10

// LogWriter writes the CRI log format the kubelet parses:
//
//	<RFC3339Nano> <stdout|stderr> <P|F> <content>\n
//
// Several streams share one file; a record is written whole under the lock
// so that streams never interleave inside a line.
type LogWriter struct {
	mu   sync.Mutex
	path string
	f    *os.File
	w    *bufio.Writer
	buf  []byte
}

// OpenLog opens (appending, creating) the log at path.
func OpenLog(path string) (*LogWriter, error) {
	l := &LogWriter{path: path}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LogWriter) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	l.f, l.w = f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// Reopen flushes to the old file and opens path again: after the kubelet
// renamed the file for rotation, new lines go to a fresh one. Lines produced
// meanwhile wait in the pipe, so none is lost. On a closed log it does
// nothing: the output has ended, so no line can be lost, and a rotation
// that races the container's exit must not fail with an unknown error
// (the kubelet would undo it and retry forever).
func (l *LogWriter) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return nil
	}
	if err := l.w.Flush(); err != nil {
		return err
	}
	l.f.Close()
	return l.open()
}

// record writes one record; flush says the reader has nothing more queued,
// so the data should reach the file now rather than wait for more.
func (l *LogWriter) record(stream string, partial bool, line []byte, flush bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return errors.New("log closed")
	}
	tag := byte('F')
	if partial {
		tag = 'P'
	}
	b := time.Now().AppendFormat(l.buf[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, line...)
	b = append(b, '\n')
	l.buf = b
	if _, err := l.w.Write(b); err != nil {
		return err
	}
	if flush {
		return l.w.Flush()
	}
	return nil
}

// Flush pushes buffered records to the file.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return nil
	}
	return l.w.Flush()
}

// Close flushes and closes the file.
func (l *LogWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w == nil {
		return nil
	}
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.w, l.f = nil, nil
	return err
}

// Copy reads r until EOF and writes it to l as stream records. A line
// longer than MaxLineSize becomes P records ending in an F; a last line
// without newline is still written (as F), as containerd does.
func (l *LogWriter) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, MaxLineSize)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			// "\r\n" ends a line too, as in containerd (bufio.ReadLine):
			// a tty's output would otherwise carry a \r into every record.
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if err := l.record(stream, false, line, br.Buffered() == 0); err != nil {
				return err
			}
		case errors.Is(err, bufio.ErrBufferFull):
			if err := l.record(stream, true, line, false); err != nil {
				return err
			}
		default:
			if len(line) > 0 {
				if werr := l.record(stream, false, line, true); werr != nil {
					return werr
				}
			}
			if err == io.EOF || errors.Is(err, os.ErrClosed) {
				return l.Flush()
			}
			l.Flush()
			return err
		}
	}
}
