//go:build executor_standalone

package oci

// This file stands in for oci/cgroups until that package is merged: a
// minimal cgroup v1 manager (pids, memory, freezer) so the executor and its
// tests run on their own. Build with -tags executor_standalone.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
)

var defaultCgroupFactory CgroupFactory = newFakeCgroup

// Stats is not available without oci/cgroups.
func (r *Runtime) Stats(ctx context.Context, id string) (*struct{}, error) {
	return nil, errdefs.Unimplemented("stats: oci/cgroups not linked")
}

type fakeCgroup struct{ paths map[string]string }

func newFakeCgroup(p string) (CgroupManager, error) {
	if i := strings.LastIndex(p, ":"); i >= 0 { // systemd naming slice:prefix:name
		parts := strings.SplitN(p, ":", 3)
		p = "/" + strings.TrimSuffix(parts[0], ".slice") + "/" + parts[1] + "-" + parts[2]
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	paths := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		i := 0
		for i < len(fields) && fields[i] != "-" {
			i++
		}
		if i+3 >= len(fields) || fields[i+1] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(fields[i+3], ",") {
			switch opt {
			case "pids", "memory", "freezer":
				paths[opt] = filepath.Join(fields[4], filepath.Clean("/"+p))
			}
		}
	}
	return &fakeCgroup{paths: paths}, nil
}

func (c *fakeCgroup) Paths() map[string]string { return c.paths }

func (c *fakeCgroup) Apply(pid int) error {
	for _, d := range c.paths {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	return nil
}

func (c *fakeCgroup) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if r.Pids != nil && r.Pids.Limit != nil && c.paths["pids"] != "" {
		v := "max"
		if *r.Pids.Limit > 0 {
			v = strconv.FormatInt(*r.Pids.Limit, 10)
		}
		if err := os.WriteFile(filepath.Join(c.paths["pids"], "pids.max"), []byte(v), 0); err != nil {
			return err
		}
	}
	if r.Memory != nil && r.Memory.Limit != nil && c.paths["memory"] != "" {
		if err := os.WriteFile(filepath.Join(c.paths["memory"], "memory.limit_in_bytes"), []byte(strconv.FormatInt(*r.Memory.Limit, 10)), 0); err != nil {
			return err
		}
	}
	return nil
}

func (c *fakeCgroup) freezer(state string) error {
	d := c.paths["freezer"]
	if d == "" {
		return errdefs.Unimplemented("no freezer")
	}
	for i := 0; i < 1000; i++ {
		if i%20 == 19 && state == "FROZEN" {
			// v1 can stay FREEZING on a task in a non-freezable sleep:
			// thaw and retry, as runc does.
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
		}
		if err := os.WriteFile(filepath.Join(d, "freezer.state"), []byte(state), 0); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(d, "freezer.state"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == state {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("freezer: timeout")
}

func (c *fakeCgroup) Freeze() error { return c.freezer("FROZEN") }
func (c *fakeCgroup) Thaw() error   { return c.freezer("THAWED") }

func (c *fakeCgroup) Pids() ([]int, error) {
	d := c.paths["pids"]
	if d == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var pids []int
	for _, l := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(l); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

func (c *fakeCgroup) Kill(sig unix.Signal) error {
	pids, err := c.Pids()
	if err != nil {
		return err
	}
	for _, p := range pids {
		_ = unix.Kill(p, sig)
	}
	return nil
}

func (c *fakeCgroup) Destroy() error {
	var last error
	for _, d := range c.paths {
		for i := 0; i < 100; i++ {
			last = os.Remove(d)
			if last == nil || os.IsNotExist(last) {
				last = nil
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return last
}
