// Package store owns cri-server's durable records (one bbolt file under the
// root dir), ids, and the name registrar. bbolt commits are atomic and
// fsynced (PutUnsynced's are atomic and synced by the next commit): a
// crash never leaves a half-written record to read back.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cri-server/cri-server/errdefs"
)

// Buckets in use. Each package keeps its records in its own bucket.
const (
	BucketPods       = "pods"
	BucketContainers = "containers"
	BucketImages     = "images"
)

// DB is the metadata store.
type DB struct {
	db *bolt.DB
	gc groupCommit
}

// Open opens (creating) the store at path.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// Put stores v (as JSON) under bucket/key, replacing any old value. It
// returns once the record is durable.
func (d *DB) Put(bucket, key string, v any) error { return d.put(bucket, key, v, true) }

// PutUnsynced is Put without waiting for the disk: the record is read back
// at once, and survives a crash only once a later commit has synced (any
// Put or Delete does). For records whose loss in a crash something else
// repairs: a container's rootfs record, whose bundle dir the start-up sweep
// finds (it was made first) and undoes, until the container's own record
// is written with Put.
func (d *DB) PutUnsynced(bucket, key string, v any) error { return d.put(bucket, key, v, false) }

func (d *DB) put(bucket, key string, v any, sync bool) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return d.commit(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), data)
	}, sync)
}

// Get decodes bucket/key into v; errdefs.ErrNotFound when absent.
func (d *DB) Get(bucket, key string, v any) error {
	return d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return errdefs.NotFound("%s %s", bucket, key)
		}
		data := b.Get([]byte(key))
		if data == nil {
			return errdefs.NotFound("%s %s", bucket, key)
		}
		return json.Unmarshal(data, v)
	})
}

// Delete removes bucket/key; removing what is absent is not an error. It
// returns once the removal is durable.
func (d *DB) Delete(bucket, key string) error {
	return d.commit(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	}, true)
}

// ForEach calls fn with every key and raw JSON value of bucket, in key order.
// fn must not keep data past its return.
func (d *DB) ForEach(bucket string, fn func(key string, data []byte) error) error {
	return d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}

// List decodes every value of bucket with newT and returns them in key order.
func List[T any](d *DB, bucket string) ([]*T, error) {
	var out []*T
	err := d.ForEach(bucket, func(key string, data []byte) error {
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// NewID returns a 64-hex-digit random id, the form the kubelet and crictl
// expect (they shorten it to 13 for display).
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// ErrStoreClosed is returned after Close.
var ErrStoreClosed = errors.New("store closed")
