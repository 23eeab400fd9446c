package cgroups

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SharesToWeight converts v1 cpu.shares [2, 262144] to v2 cpu.weight
// [1, 10000] with the formula of KEP-2254 (and runc, crun): shares 1024,
// the default, becomes weight 39.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight converts v1 blkio.weight [10, 1000] to v2 io.weight
// [1, 10000], as runc does.
func BlkioWeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

// cpuMax renders v2 cpu.max "$QUOTA $PERIOD" ("max" when quota <= 0).
// "" means nothing to write.
func cpuMax(quota *int64, period *uint64) string {
	var q int64
	var p uint64
	if quota != nil {
		q = *quota
	}
	if period != nil {
		p = *period
	}
	if quota == nil && p == 0 {
		return ""
	}
	if p == 0 {
		p = 100000
	}
	if q <= 0 {
		return fmt.Sprintf("max %d", p)
	}
	return fmt.Sprintf("%d %d", q, p)
}

// swapV2 converts the spec's swap (memory+swap, v1 semantics) to v2's
// memory.swap.max (swap alone). ok false means nothing to write; -1 is max.
func swapV2(swap, mem *int64) (val int64, ok bool, err error) {
	var s, m int64
	if swap != nil {
		s = *swap
	}
	if mem != nil {
		m = *mem
	}
	switch {
	case m == -1 && s == 0:
		// v1 compatibility: unlimited memory without a swap value means
		// unlimited memory+swap.
		return -1, true, nil
	case s == 0:
		return 0, false, nil
	case s == -1:
		return -1, true, nil
	case m <= 0:
		return 0, false, errInvalid("memory.swap %d needs a memory.limit", s)
	case s < m:
		return 0, false, errInvalid("memory.swap %d (memory+swap) is below memory.limit %d", s, m)
	}
	return s - m, true, nil
}

func maxOr(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// checkPageSize accepts what the kernel names hugetlb files with: "2MB",
// "1GB", "64KB". Hand-written rather than a regexp: package init runs in
// every re-exec of the binary.
func checkPageSize(s string) error {
	num, ok := strings.CutSuffix(s, "B")
	if ok && len(num) >= 2 && strings.ContainsRune("KMG", rune(num[len(num)-1])) {
		num = num[:len(num)-1]
	} else {
		ok = false
	}
	if !ok || !allIn(num, "0123456789") {
		return errInvalid("hugepageLimits pageSize %q: want e.g. \"2MB\" or \"1GB\"", s)
	}
	return nil
}

func allIn(s, set string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune(set, c) {
			return false
		}
	}
	return true
}

// forbiddenUnified are files that move or kill processes or change the
// tree's delegation: a spec's resources must not do that.
var forbiddenUnified = map[string]bool{
	"cgroup.procs": true, "cgroup.threads": true, "cgroup.kill": true,
	"cgroup.subtree_control": true, "cgroup.type": true, "cgroup.freeze": true,
}

func checkUnifiedKey(k string) error {
	// "<controller>.<file>" in [a-z0-9_.]: no slash, so no path escape.
	ctrl, file, ok := strings.Cut(k, ".")
	if !ok || !allIn(ctrl, "abcdefghijklmnopqrstuvwxyz0123456789_") || ctrl[0] < 'a' || ctrl[0] > 'z' ||
		!allIn(file, "abcdefghijklmnopqrstuvwxyz0123456789_.") || strings.Contains(k, "..") {
		return errInvalid("unified key %q is not a cgroup file name", k)
	}
	if forbiddenUnified[k] {
		return errInvalid("unified key %q may not be set through resources", k)
	}
	return nil
}

// deviceRuleV1 renders a rule for devices.allow/deny: "c 1:3 rwm".
func deviceRuleV1(d specs.LinuxDeviceCgroup) (string, error) {
	typ := d.Type
	if typ == "" {
		typ = "a"
	}
	if typ != "a" && typ != "c" && typ != "b" {
		return "", errInvalid("device rule type %q: want a, b or c", d.Type)
	}
	acc := d.Access
	if acc == "" {
		acc = "rwm"
	}
	if strings.Trim(acc, "rwm") != "" {
		return "", errInvalid("device rule access %q: want letters from rwm", d.Access)
	}
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	if typ == "a" {
		return "a *:* " + acc, nil
	}
	return fmt.Sprintf("%s %s:%s %s", typ, num(d.Major), num(d.Minor), acc), nil
}
