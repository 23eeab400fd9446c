package oci

import specs "github.com/opencontainers/runtime-spec/specs-go"

func i64(v int64) *int64 { return &v }

// defaultDeviceRules are the cgroup rules runc appends to every container's
// (libcontainer/specconv AllowedDevices): the default device nodes the
// executor creates must be usable even when the spec starts with "deny all",
// as containerd's and CRI-O's specs do; mknod of any node is allowed, using
// it is not.
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Major: i64(-1), Minor: i64(-1), Access: "m"},
	{Allow: true, Type: "b", Major: i64(-1), Minor: i64(-1), Access: "m"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},    // null
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},    // random
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},    // full
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},    // tty
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},    // zero
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},    // urandom
	{Allow: true, Type: "c", Major: i64(136), Minor: i64(-1), Access: "rwm"}, // pts/*
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},    // ptmx
	{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"}, // net/tun
}

// withDefaultDeviceRules returns r with the default rules after the spec's
// (last rule wins, so they cannot be denied by the spec, as in runc), and
// the nodes of linux.devices allowed too: the spec asked for them to exist
// (runc does the same). A spec without device rules is left alone: it asked
// for no device cgroup. r itself is not modified.
func withDefaultDeviceRules(r *specs.LinuxResources, devs []specs.LinuxDevice) *specs.LinuxResources {
	if r == nil || len(r.Devices) == 0 {
		return r
	}
	c := *r
	c.Devices = append(append(make([]specs.LinuxDeviceCgroup, 0, len(r.Devices)+len(defaultDeviceRules)+len(devs)),
		r.Devices...), defaultDeviceRules...)
	for _, d := range devs {
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		if typ == "c" || typ == "b" {
			c.Devices = append(c.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: i64(d.Major), Minor: i64(d.Minor), Access: "rwm"})
		}
	}
	return &c
}
