package spec

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

func setResources(s *specs.Spec, in Input) error {
	r := in.Config.GetLinux().GetResources()
	if r == nil {
		return nil
	}
	res, err := Resources(r)
	if err != nil {
		return err
	}
	res.Devices = s.Linux.Resources.Devices
	s.Linux.Resources = res
	adj, err := OOMScoreAdj(int(r.OomScoreAdj), in)
	if err != nil {
		return err
	}
	s.Process.OOMScoreAdj = &adj
	return nil
}

// OOMScoreAdj clamps the kubelet's value to what the kernel will accept.
// Without CAP_SYS_RESOURCE a process cannot lower its oom_score_adj below
// its parent's, so asking for less would fail the create; the kubelet's
// value for guaranteed pods (-997) is below a daemon started at 0. We run
// the container at the lowest value allowed and say so.
func OOMScoreAdj(want int, in Input) (int, error) {
	if want < -1000 || want > 1000 {
		return 0, errdefs.InvalidArgument("oom_score_adj %d is outside [-1000, 1000]", want)
	}
	if !in.CapSysResource && want < in.DaemonOOMScoreAdj {
		if in.Log != nil {
			in.Log.Warn("oom_score_adj clamped: no CAP_SYS_RESOURCE", "container", in.ID,
				"requested", want, "allowed", in.DaemonOOMScoreAdj)
		}
		return in.DaemonOOMScoreAdj, nil
	}
	return want, nil
}

// Resources turns CRI resources into the spec's, validating units. Zero
// means unset in the CRI (the kubelet's convention) and becomes nil.
func Resources(r *runtime.LinuxContainerResources) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	if r.CpuShares < 0 || r.CpuQuota < -1 || r.CpuPeriod < 0 || r.MemoryLimitInBytes < 0 {
		return nil, errdefs.InvalidArgument("linux resources: negative cpu or memory value")
	}
	cpu := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
	if r.CpuShares > 0 {
		v := uint64(r.CpuShares)
		cpu.Shares = &v
	}
	if r.CpuQuota != 0 {
		v := r.CpuQuota
		cpu.Quota = &v
	}
	if r.CpuPeriod > 0 {
		v := uint64(r.CpuPeriod)
		cpu.Period = &v
	} else if r.CpuQuota > 0 {
		v := uint64(defaultCPUPeriod)
		cpu.Period = &v
	}
	if *cpu != (specs.LinuxCPU{}) {
		out.CPU = cpu
	}
	if r.MemoryLimitInBytes > 0 || r.MemorySwapLimitInBytes > 0 {
		out.Memory = &specs.LinuxMemory{}
		if r.MemoryLimitInBytes > 0 {
			v := r.MemoryLimitInBytes
			out.Memory.Limit = &v
		}
		if r.MemorySwapLimitInBytes > 0 {
			if r.MemorySwapLimitInBytes < r.MemoryLimitInBytes {
				return nil, errdefs.InvalidArgument("memory_swap_limit_in_bytes %d is below memory_limit_in_bytes %d",
					r.MemorySwapLimitInBytes, r.MemoryLimitInBytes)
			}
			v := r.MemorySwapLimitInBytes
			out.Memory.Swap = &v
		}
	}
	for _, h := range r.HugepageLimits {
		if !strings.HasSuffix(h.PageSize, "B") {
			return nil, errdefs.InvalidArgument("hugepage page_size %q must end in B (e.g. 2MB)", h.PageSize)
		}
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = map[string]string{}
		for _, k := range sortedKeys(r.Unified) {
			if strings.ContainsAny(k, "/") || k == "" || k == "." || k == ".." {
				return nil, errdefs.InvalidArgument("unified key %q is not a cgroup file name", k)
			}
			out.Unified[k] = r.Unified[k]
		}
		pidsFromUnified(out)
	}
	return out, nil
}

// pidsFromUnified: the CRI has no per-container pids field, so a limit
// arrives only as Unified["pids.max"]; it is copied into the typed field so
// that a v1 pids hierarchy (this node's) enforces it too.
func pidsFromUnified(out *specs.LinuxResources) {
	v, ok := out.Unified["pids.max"]
	if !ok || v == "max" {
		return
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return
		}
		n = n*10 + int64(c-'0')
	}
	out.Pids = &specs.LinuxPids{Limit: &n}
}
