package oci

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// specJSON is specs.Spec's JSON form with the other platforms' sections
// (Solaris, Windows, VM, z/OS, FreeBSD) held raw. encoding/json builds, at a type's
// first decode or encode, the encoders of its whole type graph, and those
// sections are a third of the spec's: ~0.15 ms of every process that reads
// or writes a spec (the command line, at each start). A section that is
// present is still decoded, into its own type. TestSpecJSONFields keeps the
// field list equal to the spec's.
type specJSON struct {
	Version     string            `json:"ociVersion"`
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *specs.Linux      `json:"linux,omitempty"`
	Solaris     json.RawMessage   `json:"solaris,omitempty"`
	Windows     json.RawMessage   `json:"windows,omitempty"`
	VM          json.RawMessage   `json:"vm,omitempty"`
	ZOS         json.RawMessage   `json:"zos,omitempty"`
	FreeBSD     json.RawMessage   `json:"freebsd,omitempty"`
}

// DecodeSpec decodes a runtime spec (a bundle's config.json) as
// json.Unmarshal would, without building the other platforms' decoders
// unless the spec has those sections.
func DecodeSpec(b []byte) (*specs.Spec, error) {
	var w specJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return w.spec()
}

func (w *specJSON) spec() (*specs.Spec, error) {
	s := &specs.Spec{Version: w.Version, Process: w.Process, Root: w.Root, Hostname: w.Hostname,
		Domainname: w.Domainname, Mounts: w.Mounts, Hooks: w.Hooks, Annotations: w.Annotations, Linux: w.Linux}
	for _, o := range []struct {
		name string
		raw  json.RawMessage
		dst  any
	}{{"solaris", w.Solaris, &s.Solaris}, {"windows", w.Windows, &s.Windows}, {"vm", w.VM, &s.VM}, {"zos", w.ZOS, &s.ZOS}, {"freebsd", w.FreeBSD, &s.FreeBSD}} {
		if len(o.raw) > 0 {
			if err := json.Unmarshal(o.raw, o.dst); err != nil {
				return nil, fmt.Errorf("%s: %w", o.name, err)
			}
		}
	}
	return s, nil
}

// encodeSpec is DecodeSpec's inverse: json.Marshal of s, building the
// other platforms' encoders only for the sections s has.
func encodeSpec(s *specs.Spec) (json.RawMessage, error) {
	if s == nil {
		return json.RawMessage("null"), nil
	}
	w := specJSON{Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname,
		Domainname: s.Domainname, Mounts: s.Mounts, Hooks: s.Hooks, Annotations: s.Annotations, Linux: s.Linux}
	var err error
	marshal := func(v any, isNil bool) json.RawMessage {
		if isNil || err != nil {
			return nil
		}
		var b []byte
		b, err = json.Marshal(v)
		return b
	}
	w.Solaris = marshal(s.Solaris, s.Solaris == nil)
	w.Windows = marshal(s.Windows, s.Windows == nil)
	w.VM = marshal(s.VM, s.VM == nil)
	w.ZOS = marshal(s.ZOS, s.ZOS == nil)
	w.FreeBSD = marshal(s.FreeBSD, s.FreeBSD == nil)
	if err != nil {
		return nil, err
	}
	return json.Marshal(&w)
}
