package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/cri-server/cri-server/oci"
)

type strList []string

func (s *strList) String() string     { return strings.Join(*s, ",") }
func (s *strList) Set(v string) error { *s = append(*s, v); return nil }

func cmdExec(g *globals, args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	procFile := fs.String("process", "", "process.json")
	fs.StringVar(procFile, "p", "", "process.json")
	tty := fs.Bool("tty", false, "allocate a pty")
	fs.BoolVar(tty, "t", false, "allocate a pty")
	cwd := fs.String("cwd", "", "working directory")
	detach := fs.Bool("detach", false, "do not wait")
	fs.BoolVar(detach, "d", false, "do not wait")
	user := fs.String("user", "", "uid[:gid]")
	fs.StringVar(user, "u", "", "uid[:gid]")
	var envs strList
	fs.Var(&envs, "env", "KEY=VALUE")
	fs.Var(&envs, "e", "KEY=VALUE")
	pidFile := fs.String("pid-file", "", "write the pid here")
	fs.String("console-socket", "", "ignored")
	// The id is first; everything after it is the command.
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	if err := needID(pos, 1); err != nil {
		return err
	}
	rt, err := g.runtime()
	if err != nil {
		return err
	}
	id := pos[0]
	p := &specs.Process{}
	if *procFile != "" {
		b, err := os.ReadFile(*procFile)
		if err != nil {
			return fmt.Errorf("read process: %w", err)
		}
		if err := json.Unmarshal(b, p); err != nil {
			return fmt.Errorf("decode process: %w", err)
		}
	} else {
		st, err := rt.State(context.Background(), id)
		if err != nil {
			return err
		}
		spec, err := loadSpec(st.Bundle)
		if err != nil {
			return err
		}
		p = spec.Process
		p.Args, p.Terminal = pos[1:], *tty
		p.Env = append(p.Env, envs...)
		if *cwd != "" {
			p.Cwd = *cwd
		}
		if *user != "" {
			u, gr, _ := strings.Cut(*user, ":")
			uid, _ := strconv.Atoi(u)
			p.User.UID = uint32(uid)
			if gr != "" {
				gid, _ := strconv.Atoi(gr)
				p.User.GID = uint32(gid)
			}
		}
	}
	proc, err := rt.Exec(context.Background(), id, p, oci.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		return err
	}
	if *pidFile != "" {
		_ = os.WriteFile(*pidFile, []byte(strconv.Itoa(proc.Pid)), 0o644)
	}
	if *detach {
		return nil
	}
	if proc.Console != nil {
		go func() { _, _ = io.Copy(proc.Console, os.Stdin) }()
		go func() { _, _ = io.Copy(os.Stdout, proc.Console) }()
	}
	st, err := proc.Wait()
	if err != nil {
		return err
	}
	return exitError{st.ExitCode()}
}

func cmdPs(g *globals, args []string) error {
	fs := flag.NewFlagSet("ps", flag.ContinueOnError)
	format := fs.String("format", "table", "table or json")
	fs.StringVar(format, "f", "table", "table or json")
	pos, err := parseID(fs, args)
	if err != nil {
		return err
	}
	rt, err := g.runtime()
	if err != nil {
		return err
	}
	pids, err := rt.Pids(context.Background(), pos[0])
	if err != nil {
		return err
	}
	if *format == "json" {
		if pids == nil {
			pids = []int{}
		}
		return printJSON(pids)
	}
	fmt.Println("PID")
	for _, p := range pids {
		fmt.Println(p)
	}
	return nil
}

func cmdUpdate(g *globals, args []string) error {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	resFile := fs.String("resources", "", "resources json file, - for stdin")
	fs.StringVar(resFile, "r", "", "resources json file")
	mem := fs.Int64("memory", 0, "memory limit bytes")
	pids := fs.Int64("pids-limit", 0, "pids limit")
	quota := fs.Int64("cpu-quota", 0, "cpu quota")
	period := fs.Uint64("cpu-period", 0, "cpu period")
	shares := fs.Uint64("cpu-share", 0, "cpu shares")
	pos, err := parseID(fs, args)
	if err != nil {
		return err
	}
	res := &specs.LinuxResources{}
	if *resFile != "" {
		var b []byte
		if *resFile == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(*resFile)
		}
		if err != nil {
			return fmt.Errorf("read resources: %w", err)
		}
		if err := json.Unmarshal(b, res); err != nil {
			return fmt.Errorf("decode resources: %w", err)
		}
	}
	if *mem != 0 {
		res.Memory = &specs.LinuxMemory{Limit: mem}
	}
	if *pids != 0 {
		res.Pids = &specs.LinuxPids{Limit: pids}
	}
	if *quota != 0 || *period != 0 || *shares != 0 {
		res.CPU = &specs.LinuxCPU{}
		if *quota != 0 {
			res.CPU.Quota = quota
		}
		if *period != 0 {
			res.CPU.Period = period
		}
		if *shares != 0 {
			res.CPU.Shares = shares
		}
	}
	rt, err := g.runtime()
	if err != nil {
		return err
	}
	return rt.Update(context.Background(), pos[0], res)
}

func cmdList(g *globals, args []string) error {
	rt, err := g.runtime()
	if err != nil {
		return err
	}
	ids, err := rt.List()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
	fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE")
	for _, id := range ids {
		if st, err := rt.State(context.Background(), id); err == nil {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", st.ID, st.Pid, st.Status, st.Bundle)
		}
	}
	return w.Flush()
}

func cmdFeatures(g *globals, args []string) error {
	t := true
	f := false
	return printJSON(&features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions: []string{"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async",
			"bind", "rbind", "private", "rprivate", "shared", "rshared", "slave", "rslave", "rro", "rrw",
			"rnosuid", "rnodev", "rnoexec", "rnosymfollow", "relatime", "noatime", "strictatime"},
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: oci.CapabilityNames(),
			Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: &f},
			Seccomp: &features.Seccomp{Enabled: &t,
				Actions: []string{"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
					"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"},
				Operators:  []string{"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"},
				KnownFlags: []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}},
			// Compiled in (the field's meaning), whether or not the host has
			// AppArmor: the executor applies a profile where it has.
			Apparmor:        &features.Apparmor{Enabled: &t},
			Selinux:         &features.Selinux{Enabled: &f},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &t}},
		},
	})
}

func cmdSpec(g *globals, args []string) error {
	fs := flag.NewFlagSet("spec", flag.ContinueOnError)
	bundle := fs.String("bundle", ".", "bundle dir")
	fs.StringVar(bundle, "b", ".", "bundle dir")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	p := filepath.Join(*bundle, "config.json")
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("%s exists", p)
	}
	b, err := json.MarshalIndent(oci.DefaultSpec(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}
