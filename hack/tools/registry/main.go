// Command registry-disk is the test harness's local OCI registry: the
// go-containerregistry registry handler with blobs on disk, so that a restart
// keeps the layers that hack/test-images.sh pushed. ggcr's own cmd/registry
// keeps everything in memory and listens on "localhost" only.
//
// Manifests are kept in memory by the handler; every manifest write is also
// appended to a journal in the storage dir and replayed at start, so tags
// survive a restart too.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// entry is one manifest PUT or DELETE, as received.
type entry struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

type journal struct {
	mu sync.Mutex
	f  *os.File
}

func (j *journal) add(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

func isManifestPath(p string) bool {
	return strings.HasPrefix(p, "/v2/") && strings.Contains(p, "/manifests/")
}

// replay feeds the journal back into a fresh handler.
func replay(path string, h http.Handler) (int, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// A torn last line after a crash: everything before it stands.
			log.Printf("journal: skipping bad line: %v", err)
			continue
		}
		req := httptest.NewRequest(e.Method, e.Path, bytes.NewReader(e.Body))
		if e.ContentType != "" {
			req.Header.Set("Content-Type", e.ContentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 300 && e.Method != http.MethodDelete {
			log.Printf("journal: replay %s %s: status %d", e.Method, e.Path, rec.Code)
			continue
		}
		n++
	}
	return n, sc.Err()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "address to listen on")
	dir := flag.String("dir", "", "storage dir (blobs and manifest journal)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	blobs := filepath.Join(*dir, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		log.Fatal(err)
	}
	reg := registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))
	jpath := filepath.Join(*dir, "manifests.jsonl")
	n, err := replay(jpath, reg)
	if err != nil {
		log.Fatal(err)
	}
	jf, err := os.OpenFile(jpath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	j := &journal{f: jf}

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isManifestPath(r.URL.Path) || (r.Method != http.MethodPut && r.Method != http.MethodDelete) {
			reg.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, r)
		if rec.Code < 300 {
			if err := j.add(entry{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Body: body}); err != nil {
				log.Print(err)
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving on %s, storage %s, %d manifests replayed", l.Addr(), *dir, n)
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(s.Serve(l))
}
