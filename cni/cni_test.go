package cni

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const bridge = `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge","bridge":"cni-test0"}]}`

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantName string
		wantErr  bool
	}{
		{name: "empty dir", wantErr: true},
		{name: "first in lexical order", files: map[string]string{
			"20-b.conflist": `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}`,
			"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}`,
		}, wantName: "a"},
		{name: "invalid file skipped", files: map[string]string{
			"10-bad.conflist": `{not json`,
			"20-ok.conflist":  `{"cniVersion":"1.0.0","name":"ok","plugins":[{"type":"bridge"}]}`,
		}, wantName: "ok"},
		{name: "single conf wrapped", files: map[string]string{
			"10-x.conf": `{"cniVersion":"1.0.0","name":"single","type":"bridge"}`,
		}, wantName: "single"},
		{name: "no plugins is invalid", files: map[string]string{
			"10-x.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[]}`,
		}, wantErr: true},
		{name: "other extensions ignored", files: map[string]string{
			"10-x.txt": `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]}`,
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := New(dir, []string{"/opt/cni/bin"})
			list, err := m.Load()
			if tt.wantErr {
				if !errors.Is(err, ErrNoConfig) {
					t.Fatalf("err = %v, want ErrNoConfig", err)
				}
				if m.Status() == nil {
					t.Fatal("Status must report the missing config")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if list.Name != tt.wantName {
				t.Fatalf("picked %q, want %q", list.Name, tt.wantName)
			}
		})
	}
}

func TestMissingDir(t *testing.T) {
	m := New(filepath.Join(t.TempDir(), "absent"), []string{"/opt/cni/bin"})
	if err := m.Status(); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("missing dir: %v", err)
	}
}
