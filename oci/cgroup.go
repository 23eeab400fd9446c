package oci

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CgroupManager is the part of oci/cgroups.Manager the executor drives.
type CgroupManager interface {
	Apply(pid int) error
	Set(r *specs.LinuxResources) error
	Freeze() error
	Thaw() error
	Kill(sig unix.Signal) error
	Pids() ([]int, error)
	Destroy() error
	Paths() map[string]string
}

// CgroupFactory builds the manager of a linux.cgroupsPath.
type CgroupFactory func(cgroupsPath string) (CgroupManager, error)

func (r *Runtime) cgroupsPathFor(id string, spec *specs.Spec) string {
	if spec.Linux != nil && spec.Linux.CgroupsPath != "" {
		return spec.Linux.CgroupsPath
	}
	if r.cfg.CgroupDriver == "systemd" {
		return "system.slice:cri-server:" + id
	}
	return "/cri-server/" + id
}
