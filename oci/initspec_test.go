package oci

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Every field of specs.Spec and specs.Linux either travels to the init or
// is named here as the parent's alone, so a runtime-spec upgrade cannot
// silently drop a field the init should act on.
func TestInitSpecCoversSpec(t *testing.T) {
	for _, tc := range []struct {
		name       string
		full, wire reflect.Type
		parentOnly []string
	}{
		{"spec", reflect.TypeFor[specs.Spec](), reflect.TypeFor[initSpec](),
			[]string{"Annotations", "Solaris", "Windows", "VM", "ZOS", "FreeBSD"}},
		{"linux", reflect.TypeFor[specs.Linux](), reflect.TypeFor[initLinux](),
			[]string{"Resources", "Seccomp", "NetDevices", "IntelRdt", "MemoryPolicy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skip := map[string]bool{}
			for _, n := range tc.parentOnly {
				skip[n] = true
			}
			for i := 0; i < tc.full.NumField(); i++ {
				f := tc.full.Field(i)
				w, ok := tc.wire.FieldByName(f.Name)
				switch {
				case skip[f.Name] && ok:
					t.Errorf("%s is listed as the parent's but travels", f.Name)
				case skip[f.Name]:
				case !ok:
					t.Errorf("%s.%s does not reach the init: add it to %s or to the parent's list", tc.full, f.Name, tc.wire)
				case w.Tag.Get("json") != f.Tag.Get("json"):
					t.Errorf("%s: json tag %q, want %q", f.Name, w.Tag.Get("json"), f.Tag.Get("json"))
				}
			}
		})
	}
	mode := uint32(0o644)
	s := &specs.Spec{Version: "1", Process: &specs.Process{Args: []string{"a"}}, Root: &specs.Root{Path: "/r"},
		Hostname: "h", Domainname: "d", Mounts: []specs.Mount{{Destination: "/m"}}, Hooks: &specs.Hooks{},
		Linux: &specs.Linux{UIDMappings: []specs.LinuxIDMapping{{Size: 1}}, GIDMappings: []specs.LinuxIDMapping{{Size: 2}},
			Sysctl: map[string]string{"a": "b"}, CgroupsPath: "/c", Namespaces: []specs.LinuxNamespace{{Type: "pid"}},
			Devices: []specs.LinuxDevice{{Path: "/dev/x", FileMode: nil, UID: &mode}}, RootfsPropagation: "slave",
			MaskedPaths: []string{"/m"}, ReadonlyPaths: []string{"/r"}, MountLabel: "l",
			Personality: &specs.LinuxPersonality{Domain: "LINUX"}, TimeOffsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: 1}}}}
	if got := toInitSpec(s).spec(); !reflect.DeepEqual(got, s) {
		t.Errorf("round trip\n got %+v\nwant %+v", got.Linux, s.Linux)
	}
}

// Every field of syncMsg but the config reaches the parent through
// syncNote, the form the init sends its notes in.
func TestSyncNoteCoversSyncMsg(t *testing.T) {
	msg, note := reflect.TypeFor[syncMsg](), reflect.TypeFor[syncNote]()
	for i := 0; i < msg.NumField(); i++ {
		f := msg.Field(i)
		if f.Name == "Config" {
			continue
		}
		n, ok := note.FieldByName(f.Name)
		if !ok || n.Tag != f.Tag || n.Type != f.Type {
			t.Errorf("syncMsg.%s does not travel as syncNote.%s", f.Name, f.Name)
		}
	}
}
