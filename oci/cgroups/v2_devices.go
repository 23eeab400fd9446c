package cgroups

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Access and type bits of struct bpf_cgroup_dev_ctx (include/uapi/linux/bpf.h).
const (
	bpfDevBlock = 1
	bpfDevChar  = 2
	bpfAccMknod = 1
	bpfAccRead  = 2
	bpfAccWrite = 4
)

// DeviceFilter compiles device rules to a BPF_PROG_TYPE_CGROUP_DEVICE
// program with v1's semantics: rules apply in order, so the last rule that
// matches decides; with no match the access is allowed (a fresh v1 cgroup
// allows everything, and specs start with "deny all"). An allow rule
// matches when it grants every requested access bit, a deny rule when it
// covers any of them.
func DeviceFilter(rules []specs.LinuxDeviceCgroup) (asm.Instructions, error) {
	insts := asm.Instructions{
		// r2 = type, r3 = access, r4 = major, r5 = minor
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word),
		asm.And.Imm32(asm.R2, 0xffff),
		asm.LoadMem(asm.R3, asm.R1, 0, asm.Word),
		asm.RSh.Imm32(asm.R3, 16),
		asm.LoadMem(asm.R4, asm.R1, 4, asm.Word),
		asm.LoadMem(asm.R5, asm.R1, 8, asm.Word),
	}
	// Walk the rules backwards: the first match found is the last in order.
	for i := len(rules) - 1; i >= 0; i-- {
		block, err := ruleBlock(rules[i], fmt.Sprintf("rule%d", i))
		if err != nil {
			return nil, err
		}
		next := "default"
		if i > 0 {
			next = fmt.Sprintf("rule%d", i-1)
		}
		for j := range block {
			if block[j].OpCode.JumpOp() != asm.InvalidJumpOp && block[j].Reference() == "next" {
				block[j] = block[j].WithReference(next)
			}
		}
		insts = append(insts, block...)
	}
	insts = append(insts,
		asm.Mov.Imm32(asm.R0, 1).WithSymbol("default"),
		asm.Return(),
	)
	return insts, nil
}

func ruleBlock(d specs.LinuxDeviceCgroup, sym string) (asm.Instructions, error) {
	if _, err := deviceRuleV1(d); err != nil {
		return nil, err
	}
	var acc int32
	a := d.Access
	if a == "" {
		a = "rwm"
	}
	if strings.Contains(a, "r") {
		acc |= bpfAccRead
	}
	if strings.Contains(a, "w") {
		acc |= bpfAccWrite
	}
	if strings.Contains(a, "m") {
		acc |= bpfAccMknod
	}
	var b asm.Instructions
	switch d.Type {
	case "c":
		b = append(b, asm.JNE.Imm(asm.R2, bpfDevChar, "next"))
	case "b":
		b = append(b, asm.JNE.Imm(asm.R2, bpfDevBlock, "next"))
	}
	b = append(b, asm.Mov.Reg32(asm.R6, asm.R3))
	if d.Allow {
		b = append(b, asm.And.Imm32(asm.R6, ^acc&7), asm.JNE.Imm(asm.R6, 0, "next"))
	} else {
		b = append(b, asm.And.Imm32(asm.R6, acc), asm.JEq.Imm(asm.R6, 0, "next"))
	}
	if d.Major != nil && *d.Major >= 0 {
		b = append(b, asm.JNE.Imm(asm.R4, int32(*d.Major), "next"))
	}
	if d.Minor != nil && *d.Minor >= 0 {
		b = append(b, asm.JNE.Imm(asm.R5, int32(*d.Minor), "next"))
	}
	ret := int32(0)
	if d.Allow {
		ret = 1
	}
	b = append(b, asm.Mov.Imm32(asm.R0, ret), asm.Return())
	b[0] = b[0].WithSymbol(sym)
	return b, nil
}

// setDevices loads the filter and attaches it to the cgroup before
// detaching the previous ones, so there is no moment without a filter.
// BPF_F_ALLOW_MULTI programs all have to allow, hence the detach.
func (m *v2Manager) setDevices(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	insts, err := DeviceFilter(r.Devices)
	if err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		Instructions: insts,
		License:      "Apache",
	})
	if err != nil {
		return fmt.Errorf("load device filter: %w", err)
	}
	defer prog.Close()
	fd, err := unix.Open(m.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", m.dir, classify(err))
	}
	defer unix.Close(fd)
	old, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("query device filters %s: %w", m.dir, err)
	}
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI,
	}); err != nil {
		return fmt.Errorf("attach device filter %s: %w", m.dir, err)
	}
	var errs []error
	for _, p := range old.Programs {
		op, err := ebpf.NewProgramFromID(p.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: op, Attach: ebpf.AttachCGroupDevice})
		op.Close()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach old device filters %s: %w", m.dir, err)
	}
	return nil
}
