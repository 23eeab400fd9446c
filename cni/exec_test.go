package cni

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A plugin that records the niceness it ran at and answers ADD.
const niceProbe = `#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0
fi
cut -d' ' -f19 /proc/$$/stat > "$(dirname "$0")/nice.$CNI_COMMAND"
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.9.8.7/24"}]}'
`

func TestPluginNiceness(t *testing.T) {
	base := threadNices(t)
	for _, tc := range []struct {
		name string
		nice int
		want int
	}{
		{name: "default", nice: -1, want: base[0] + DefaultPluginNice},
		{name: "set", nice: 11, want: base[0] + 11},
		{name: "off", nice: 0, want: base[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin, conf := filepath.Join(dir, "bin"), filepath.Join(dir, "conf")
			for _, d := range []string{bin, conf} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(bin, "probe"), []byte(niceProbe), 0o755); err != nil {
				t.Fatal(err)
			}
			list := `{"cniVersion":"1.0.0","name":"nicetest","plugins":[{"type":"probe"}]}`
			if err := os.WriteFile(filepath.Join(conf, "10-probe.conflist"), []byte(list), 0o644); err != nil {
				t.Fatal(err)
			}
			m := New(conf, []string{bin})
			m.SetCacheDir(filepath.Join(dir, "cache"))
			if tc.nice >= 0 {
				m.SetPluginNice(tc.nice)
			}
			a := &Attachment{ID: "c0ffee", NetNS: "/proc/self/ns/net", Namespace: "ns", Name: "pod", UID: "uid"}
			if err := m.Prepare(a); err != nil {
				t.Fatal(err)
			}
			res, err := m.Add(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.IPs) != 1 || res.IPs[0] != "10.9.8.7" {
				t.Fatalf("ADD result IPs %v, want [10.9.8.7]", res.IPs)
			}
			if err := m.Del(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"ADD", "DEL"} {
				b, err := os.ReadFile(filepath.Join(bin, "nice."+cmd))
				if err != nil {
					t.Fatalf("%s did not run: %v", cmd, err)
				}
				if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != tc.want {
					t.Errorf("%s ran at niceness %d, want %d", cmd, got, tc.want)
				}
			}
			// The caller's own threads keep their niceness.
			for tid, n := range threadNices(t) {
				if n != base[0] {
					t.Errorf("thread %d of the caller at niceness %d after the plugins ran, want %d", tid, n, base[0])
				}
			}
		})
	}
}

// threadNices reads the niceness of every thread of this process; key 0
// holds the main thread's.
func threadNices(t *testing.T) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", e.Name(), "stat"))
		if err != nil {
			continue // the thread ended
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		n, _ := strconv.Atoi(f[16]) // field 19 of stat: nice
		tid, _ := strconv.Atoi(e.Name())
		out[tid] = n
		if tid == os.Getpid() {
			out[0] = n
		}
	}
	return out
}
