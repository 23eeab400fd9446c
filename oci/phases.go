package oci

import (
	"log/slog"
	"time"
)

// phases times a create, for the "container created" log line that
// hack/bench-executor.sh reads: where a container's start-up goes.
type phases struct {
	t0, last time.Time
	fast     bool          // the fork's C init (fastinit.c), not the Go one
	prep     time.Duration // validation, seccomp (cached), state dir, exec fifo
	cgroup   time.Duration // mkdir and open (before clone); a pid move after it on the slow path
	clone    time.Duration // clone with the new namespaces, up to the init's execve (the fast init: its plan and the fork)
	goStart  time.Duration // the init's exec (and dynamic linking, unless static), C constructor (cgroup v1 join), Go runtime and package init; 0 for the fast init
	config   time.Duration // the config's trip to the init and its decoding; 0 for the fast init
	rootfs   time.Duration // mounts, devices, pivot_root, masked and read-only paths
	process  time.Duration // rlimits, console, cwd, exec lookup, until ready
	limits   time.Duration // cgroup limits
	save     time.Duration // state.json
}

// mark adds the time since the previous mark to *d.
func (p *phases) mark(d *time.Duration) {
	now := time.Now()
	if p.last.IsZero() {
		p.last = p.t0
	}
	*d += now.Sub(p.last)
	p.last = now
}

// init splits the time since the clone by the init's own milestones
// (same clock: CLOCK_REALTIME of one machine).
func (p *phases) init(t *initTimes) {
	now := time.Now()
	if t == nil || t.Main == 0 || t.Config < t.Main || t.Rootfs < t.Config {
		p.process += now.Sub(p.last)
		p.last = now
		return
	}
	main, cfg, rootfs := time.Unix(0, t.Main), time.Unix(0, t.Config), time.Unix(0, t.Rootfs)
	// The init may reach main before we got back from the clone.
	p.goStart += max(0, main.Sub(p.last))
	p.config += cfg.Sub(main)
	p.rootfs += rootfs.Sub(cfg)
	p.process += now.Sub(rootfs)
	p.last = now
}

func (p *phases) attrs() []any {
	ms := func(d time.Duration) slog.Value { return slog.StringValue(d.Round(time.Microsecond).String()) }
	return []any{
		"prep", ms(p.prep), "cgroup", ms(p.cgroup), "clone", ms(p.clone), "gostart", ms(p.goStart),
		"config", ms(p.config), "rootfs", ms(p.rootfs), "process", ms(p.process), "limits", ms(p.limits),
		"save", ms(p.save), "took", ms(time.Since(p.t0)), "init", initKind(p.fast),
	}
}

func initKind(fast bool) string {
	if fast {
		return "c"
	}
	return "go"
}
