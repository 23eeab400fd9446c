package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSpecJSONFields: specJSON names every field of specs.Spec, no more, so
// a runtime-spec upgrade that adds one cannot lose it silently.
func TestSpecJSONFields(t *testing.T) {
	names := func(ty reflect.Type) []string {
		var n []string
		for f := range ty.Fields() {
			n = append(n, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		slices.Sort(n)
		return n
	}
	got, want := names(reflect.TypeFor[specJSON]()), names(reflect.TypeFor[specs.Spec]())
	if !slices.Equal(got, want) {
		t.Fatalf("specJSON fields %v, specs.Spec's %v", got, want)
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	one := uint64(1)
	tests := []struct {
		name string
		spec *specs.Spec
	}{
		{name: "linux", spec: &specs.Spec{Version: "1.3.0", Hostname: "h", Root: &specs.Root{Path: "rootfs"},
			Process:     &specs.Process{Args: []string{"/bin/true"}, Cwd: "/"},
			Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}},
			Annotations: map[string]string{"a": "b"},
			Linux: &specs.Linux{CgroupsPath: "/x", Resources: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &[]int64{5}[0]}},
				Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}}},
		{name: "every platform", spec: &specs.Spec{Version: "1.3.0",
			Solaris: &specs.Solaris{Milestone: "m"}, Windows: &specs.Windows{LayerFolders: []string{"l"}},
			VM: &specs.VM{Kernel: specs.VMKernel{Path: "k"}}, FreeBSD: &specs.FreeBSD{Jail: &specs.FreeBSDJail{Host: "h"}}, ZOS: &specs.ZOS{Namespaces: []specs.ZOSNamespace{{Type: "pid"}}},
			Linux: &specs.Linux{Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &one}}}}},
		{name: "empty", spec: &specs.Spec{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			std, err := json.Marshal(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := encodeSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if string(ours) != string(std) {
				t.Errorf("encodeSpec:\n%s\nwant json.Marshal's\n%s", ours, std)
			}
			got, err := DecodeSpec(std)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.spec) {
				t.Errorf("DecodeSpec: %+v, want %+v", got, tc.spec)
			}
		})
	}
}

func TestDecodeSpecErrors(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{name: "not json", in: "{"},
		{name: "bad linux", in: `{"linux": 3}`},
		{name: "bad windows", in: `{"windows": {"layerFolders": 3}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeSpec([]byte(tc.in)); err == nil {
				t.Fatal("decoded")
			}
		})
	}
}

// TestSaveRawSpec: a state given the spec's JSON as read (CreateBundleRaw)
// saves it as is (a field unknown to specs.Spec shows it), and loads back
// the same spec as one encoded again.
func TestSaveRawSpec(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{StateDir: dir}}
	raw := []byte(`{"ociVersion":"1.2.0","process":{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}},` +
		`"root":{"path":"rootfs"},"annotations":{"a":"b"},"linux":{"cgroupsPath":"/x"},"x-ext":1}`)
	spec, err := DecodeSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		raw      json.RawMessage
		verbatim bool
	}{{"raw", raw, true}, {"encoded", nil, false}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := "c-" + tc.name
			if err := os.Mkdir(r.dir(id), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := r.save(&containerState{ID: id, Spec: spec, raw: tc.raw}); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(r.dir(id), stateFile))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(b), `"x-ext":1`); got != tc.verbatim {
				t.Errorf("state holds the raw spec: %v, want %v: %s", got, tc.verbatim, b)
			}
			st, err := r.load(id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(st.Spec, spec) {
				t.Errorf("loaded spec %+v, want %+v", st.Spec, spec)
			}
		})
	}
}
