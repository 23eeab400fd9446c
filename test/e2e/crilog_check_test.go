package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadCRILog checks the log oracle of the e2e tests: it puts partial
// records back together across files and refuses what the kubelet's parser
// would refuse.
func TestReadCRILog(t *testing.T) {
	const ts = "2026-11-27T04:00:00.000000001Z"
	tests := []struct {
		name    string
		files   []string
		want    string // whole lines, "<stream> <content>|..."
		wantErr string
	}{
		{name: "full lines", files: []string{ts + " stdout F a\n" + ts + " stderr F b\n"}, want: "stdout a|stderr b"},
		{name: "partial across files", files: []string{ts + " stdout P ab\n", ts + " stderr F x\n" + ts + " stdout F c\n"}, want: "stderr x|stdout abc"},
		{name: "empty line", files: []string{ts + " stdout F \n"}, want: "stdout "},
		{name: "torn record", files: []string{ts + " stdout F a"}, wantErr: "torn record"},
		{name: "bad tag", files: []string{ts + " stdout X a\n"}, wantErr: "tag"},
		{name: "bad stream", files: []string{ts + " stdin F a\n"}, wantErr: "stream"},
		{name: "bad time", files: []string{"yesterday stdout F a\n"}, wantErr: "timestamp"},
		{name: "time going back", files: []string{ts + " stdout F a\n2026-11-27T03:59:59Z stdout F b\n"}, wantErr: "before the previous"},
		{name: "partial never ended", files: []string{ts + " stdout P a\n"}, wantErr: "never ended"},
		{name: "no fields", files: []string{"garbage\n"}, wantErr: "not a CRI log record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for i, content := range tt.files {
				p := filepath.Join(dir, string(rune('a'+i)))
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
			}
			lines, err := logLines(paths...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lines {
				got = append(got, l.stream+" "+string(l.content))
			}
			if g := strings.Join(got, "|"); g != tt.want {
				t.Errorf("lines %q, want %q", g, tt.want)
			}
		})
	}
}
