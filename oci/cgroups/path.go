package cgroups

import (
	"path"
	"strings"
)

// ParsePath turns the spec's linux.cgroupsPath into a clean absolute path
// relative to each hierarchy root. "slice:prefix:name" is systemd naming.
// A relative cgroupfs path is taken from the root: no cgroup is created
// outside the hierarchy, and ".." cannot climb above it.
func ParsePath(p string) (string, error) {
	if p == "" {
		return "", errInvalid("linux.cgroupsPath is empty")
	}
	if strings.ContainsRune(p, 0) {
		return "", errInvalid("linux.cgroupsPath %q contains NUL", p)
	}
	if strings.Count(p, ":") == 2 {
		parts := strings.SplitN(p, ":", 3)
		return SystemdPath(parts[0], parts[1], parts[2])
	}
	if strings.Contains(p, ":") {
		return "", errInvalid("linux.cgroupsPath %q: want \"/a/b\" or \"slice:prefix:name\"", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", errInvalid("linux.cgroupsPath %q must not contain \"..\"", p)
		}
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return "", errInvalid("linux.cgroupsPath %q names the root cgroup", p)
	}
	return c, nil
}

// SystemdPath maps systemd naming to the cgroupfs path systemd would create:
// "kubepods-besteffort-pod1.slice", "cri-server", "abc" ->
// /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-server-abc.scope.
// A name ending in ".slice" is a slice itself (pod cgroups).
func SystemdPath(slice, prefix, name string) (string, error) {
	if name == "" {
		return "", errInvalid("systemd cgroupsPath %q: empty name", slice+":"+prefix+":"+name)
	}
	dir, err := ExpandSlice(slice)
	if err != nil {
		return "", err
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name
		}
		unit += ".scope"
	} else if _, err := ExpandSlice(name); err != nil {
		return "", err
	}
	if strings.ContainsAny(unit, "/") || strings.HasPrefix(unit, ".") {
		return "", errInvalid("systemd unit name %q is invalid", unit)
	}
	return path.Join(dir, unit), nil
}

// ExpandSlice turns "a-b-c.slice" into "/a.slice/a-b.slice/a-b-c.slice", as
// systemd nests slices by their dash-separated prefix. "" and "-.slice" are
// the root.
func ExpandSlice(slice string) (string, error) {
	if slice == "" || slice == "-.slice" {
		return "/", nil
	}
	name, ok := strings.CutSuffix(slice, ".slice")
	if !ok || name == "" || strings.Contains(name, "/") || strings.Contains(name, "--") ||
		strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") || name == "." || name == ".." {
		return "", errInvalid("systemd slice %q is invalid", slice)
	}
	var b strings.Builder
	prefix := ""
	for _, comp := range strings.Split(name, "-") {
		prefix += comp
		b.WriteString("/" + prefix + ".slice")
		prefix += "-"
	}
	return b.String(), nil
}

func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}
