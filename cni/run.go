package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// IfName is the interface every pod gets, as the kubelet expects.
const IfName = "eth0"

// PortMapping is one hostPort, in the portmap plugin's capability format.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Attachment names one pod's network: what ADD was given, so that DEL and
// CHECK later get the very same arguments.
type Attachment struct {
	ID           string        `json:"id"`
	NetNS        string        `json:"netns"`
	Namespace    string        `json:"namespace"`
	Name         string        `json:"name"`
	UID          string        `json:"uid"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// ConfList is the conflist ADD used. DEL runs with it even when the
	// conf dir changed or emptied since, so a pod can always be torn down.
	ConfList []byte `json:"confList,omitempty"`
}

// Result is what a pod learns from ADD.
type Result struct {
	IPs []string // primary first (IPv4 before IPv6, as the kubelet expects)
	Raw []byte   // the CNI result JSON, for verbose status
	// Waited is how long ADD waited for its turn (SetMaxParallelAdd).
	Waited time.Duration
}

// SetCacheDir sets where libcni keeps results between ADD and DEL. It
// must be called before the manager is used.
func (m *Manager) SetCacheDir(dir string) { m.cacheDir = dir }

func (m *Manager) cniConfig() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(m.binDirs, m.cacheDir, nil)
}

func (a *Attachment) runtimeConf() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: a.ID,
		NetNS:       a.NetNS,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", a.Namespace},
			{"K8S_POD_NAME", a.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", a.ID},
			{"K8S_POD_UID", a.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if len(a.PortMappings) > 0 {
		rt.CapabilityArgs["portMappings"] = a.PortMappings
	}
	return rt
}

// Prepare loads the current conflist into a, fixing which network ADD and
// DEL will use. The caller persists a before calling Add, so that a crash
// during ADD still leaves enough to run DEL on the next start.
func (m *Manager) Prepare(a *Attachment) error {
	list, err := m.Load()
	if err != nil {
		return err
	}
	a.ConfList = list.Bytes
	return nil
}

// Add runs ADD for a, inside a.NetNS. On failure the caller must still run
// Del: IPAM can allocate before a later plugin fails.
func (m *Manager) Add(ctx context.Context, a *Attachment) (*Result, error) {
	list, err := libcni.ConfListFromBytes(a.ConfList)
	if err != nil {
		return nil, fmt.Errorf("parse conflist: %w", err)
	}
	release, waited, err := m.admit(ctx)
	if err != nil {
		return nil, fmt.Errorf("add network %s: wait %v for a turn: %w", list.Name, waited.Round(time.Millisecond), err)
	}
	res, err := m.cniConfig().AddNetworkList(ctx, list, a.runtimeConf())
	release()
	if err != nil {
		return nil, fmt.Errorf("add network %s: %w", list.Name, err)
	}
	r, err := toResult(res)
	if r != nil {
		r.Waited = waited
	}
	return r, err
}

// Check runs CHECK for a, where the conflist's version supports it.
func (m *Manager) Check(ctx context.Context, a *Attachment) error {
	list, err := libcni.ConfListFromBytes(a.ConfList)
	if err != nil {
		return fmt.Errorf("parse conflist: %w", err)
	}
	if err := m.cniConfig().CheckNetworkList(ctx, list, a.runtimeConf()); err != nil {
		return fmt.Errorf("check network %s: %w", list.Name, err)
	}
	return nil
}

// Del runs DEL for a. A network that is already gone is success: plugins
// must tolerate a repeated DEL, and a missing netns is passed as "" so that
// IPAM still releases the address.
func (m *Manager) Del(ctx context.Context, a *Attachment) error {
	if len(a.ConfList) == 0 {
		return nil // ADD never ran
	}
	list, err := libcni.ConfListFromBytes(a.ConfList)
	if err != nil {
		return fmt.Errorf("parse conflist: %w", err)
	}
	rt := a.runtimeConf()
	if rt.NetNS != "" {
		if _, err := os.Stat(rt.NetNS); errors.Is(err, os.ErrNotExist) {
			rt.NetNS = ""
		}
	}
	if err := m.cniConfig().DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("delete network %s: %w", list.Name, err)
	}
	return nil
}

// GC asks the plugins (CNI 1.1) to release whatever is held for
// attachments other than valid. Plugins or versions without GC are skipped.
func (m *Manager) GC(ctx context.Context, valid []*Attachment) error {
	list, err := m.Load()
	if err != nil {
		return err
	}
	args := &libcni.GCArgs{}
	for _, a := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: a.ID, IfName: IfName})
	}
	if err := m.cniConfig().GCNetworkList(ctx, list, args); err != nil {
		return fmt.Errorf("gc network %s: %w", list.Name, err)
	}
	return nil
}

// Ready says whether pods can get a network now: the config loads and the
// plugins (CNI 1.1 STATUS, where supported) report ready.
func (m *Manager) Ready(ctx context.Context) error {
	list, err := m.Load()
	if err != nil {
		return err
	}
	if err := m.cniConfig().GetStatusNetworkList(ctx, list); err != nil {
		return fmt.Errorf("network %s status: %w", list.Name, err)
	}
	return nil
}

func toResult(r types.Result) (*Result, error) {
	cur, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	raw, err := json.Marshal(cur)
	if err != nil {
		return nil, fmt.Errorf("encode CNI result: %w", err)
	}
	out := &Result{Raw: raw}
	var v6 []string
	for _, ip := range cur.IPs {
		// Only addresses on the pod's own interface (or unassigned ones).
		if ip.Interface != nil && *ip.Interface < len(cur.Interfaces) && cur.Interfaces[*ip.Interface].Sandbox == "" {
			continue
		}
		if ip.Address.IP.To4() != nil {
			out.IPs = append(out.IPs, ip.Address.IP.String())
		} else {
			v6 = append(v6, ip.Address.IP.String())
		}
	}
	out.IPs = append(out.IPs, v6...)
	return out, nil
}

// DefaultCacheDir is where results live unless SetCacheDir says otherwise.
func DefaultCacheDir(root string) string { return filepath.Join(root, "cni-cache") }
