package cgroups

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-server/cri-server/errdefs"
)

// A network (net_cls/net_prio) limit is written where its v1 hierarchy is
// mounted and refused, naming the field, where it is not (this machine has
// neither), never dropped in silence (runtime-tools' linux_cgroups_network;
// runc and crun fail the create too).
func TestNetworkLimitNeedsItsHierarchy(t *testing.T) {
	requireRoot(t)
	l, err := DetectLayout()
	if err != nil {
		t.Fatal(err)
	}
	if l.Mode == ModeV2 {
		t.Skip("v1 controllers only")
	}
	tests := []struct {
		name  string
		ctrl  string
		field string
		res   specs.LinuxNetwork
		file  string
		want  string
	}{
		{"classID", "net_cls", "linux.resources.network.classID",
			specs.LinuxNetwork{ClassID: ptr(uint32(0x100001))}, "net_cls.classid", "1048577"},
		{"priorities", "net_prio", "linux.resources.network.priorities",
			specs.LinuxNetwork{Priorities: []specs.LinuxInterfacePriority{{Name: "lo", Priority: 7}}}, "net_prio.ifpriomap", "lo 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := hostManager(t)
			if err := m.Apply(0); err != nil {
				t.Fatal(err)
			}
			err := m.Set(&specs.LinuxResources{Network: &tt.res})
			if _, mounted := l.V1[tt.ctrl]; !mounted {
				if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), tt.field) {
					t.Fatalf("Set without %s = %v, want not implemented naming %s", tt.ctrl, err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readBack(t, m.Paths()[tt.ctrl], tt.file); !strings.Contains(got, tt.want) {
				t.Fatalf("%s = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}
