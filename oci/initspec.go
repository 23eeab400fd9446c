package oci

import specs "github.com/opencontainers/runtime-spec/specs-go"

// initSpec is the part of the spec the init acts on, as it travels to it.
// encoding/json builds the encoders of a struct's whole type graph the
// first time it meets the struct, and the init meets it cold: decoding a
// full specs.Spec costs it ~0.5 ms, most of it for types it never reads
// (resources, seccomp, Windows, Solaris, VM...). The parent handles those.
// A field the init starts to read must be added here.
type initSpec struct {
	Version    string         `json:"ociVersion"`
	Process    *specs.Process `json:"process,omitempty"`
	Root       *specs.Root    `json:"root,omitempty"`
	Hostname   string         `json:"hostname,omitempty"`
	Domainname string         `json:"domainname,omitempty"`
	Mounts     []specs.Mount  `json:"mounts,omitempty"`
	Hooks      *specs.Hooks   `json:"hooks,omitempty"`
	Linux      *initLinux     `json:"linux,omitempty"`
}

// initLinux is specs.Linux without resources, seccomp (the parent sends
// the compiled program), netDevices, intelRdt and memoryPolicy.
type initLinux struct {
	UIDMappings       []specs.LinuxIDMapping           `json:"uidMappings,omitempty"`
	GIDMappings       []specs.LinuxIDMapping           `json:"gidMappings,omitempty"`
	Sysctl            map[string]string                `json:"sysctl,omitempty"`
	CgroupsPath       string                           `json:"cgroupsPath,omitempty"`
	Namespaces        []specs.LinuxNamespace           `json:"namespaces,omitempty"`
	Devices           []specs.LinuxDevice              `json:"devices,omitempty"`
	RootfsPropagation string                           `json:"rootfsPropagation,omitempty"`
	MaskedPaths       []string                         `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string                         `json:"readonlyPaths,omitempty"`
	MountLabel        string                           `json:"mountLabel,omitempty"`
	Personality       *specs.LinuxPersonality          `json:"personality,omitempty"`
	TimeOffsets       map[string]specs.LinuxTimeOffset `json:"timeOffsets,omitempty"`
}

func toInitSpec(s *specs.Spec) *initSpec {
	if s == nil {
		return nil
	}
	w := &initSpec{Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname,
		Domainname: s.Domainname, Mounts: s.Mounts, Hooks: s.Hooks}
	if l := s.Linux; l != nil {
		w.Linux = &initLinux{UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings, Sysctl: l.Sysctl,
			CgroupsPath: l.CgroupsPath, Namespaces: l.Namespaces, Devices: l.Devices,
			RootfsPropagation: l.RootfsPropagation, MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths,
			MountLabel: l.MountLabel, Personality: l.Personality, TimeOffsets: l.TimeOffsets}
	}
	return w
}

func (w *initSpec) spec() *specs.Spec {
	if w == nil {
		return nil
	}
	s := &specs.Spec{Version: w.Version, Process: w.Process, Root: w.Root, Hostname: w.Hostname,
		Domainname: w.Domainname, Mounts: w.Mounts, Hooks: w.Hooks}
	if l := w.Linux; l != nil {
		s.Linux = &specs.Linux{UIDMappings: l.UIDMappings, GIDMappings: l.GIDMappings, Sysctl: l.Sysctl,
			CgroupsPath: l.CgroupsPath, Namespaces: l.Namespaces, Devices: l.Devices,
			RootfsPropagation: l.RootfsPropagation, MaskedPaths: l.MaskedPaths, ReadonlyPaths: l.ReadonlyPaths,
			MountLabel: l.MountLabel, Personality: l.Personality, TimeOffsets: l.TimeOffsets}
	}
	return s
}
