// Package cli owns `cri-server oci <verb>`, a runc-compatible command line
// over package oci, so the OCI conformance suite and benchmarks can drive the
// executor the way they drive runc and crun.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/oci"
)

type globals struct {
	root, log, logFormat string
	systemd, debug       bool
	stderr               io.Writer
	opts                 Options
}

// Options are what the binary hands the command line.
type Options struct {
	// Init is the executable run as every container's init (cri-server's
	// embedded shim) and InitDigest names its content. The shim's Go
	// start-up is ~1.5 ms where cri-server's is ~4 ms, most of it the
	// package init of gRPC, metrics and images, which an init has no use
	// for. Without it the command line re-executes its own binary as the
	// init.
	Init       []byte
	InitDigest string
}

type verb func(g *globals, args []string) error

var verbs = map[string]verb{
	"create": cmdCreate, "start": cmdStart, "run": cmdRun, "state": cmdState, "kill": cmdKill,
	"delete": cmdDelete, "exec": cmdExec, "ps": cmdPs, "pause": cmdPause, "resume": cmdResume,
	"update": cmdUpdate, "features": cmdFeatures, "spec": cmdSpec, "list": cmdList,
}

// exitError carries a process's exit code out of run and exec.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// Main runs the command line (args without the program name and "oci") and
// returns the process exit code.
func Main(args []string) int { return MainWith(args, Options{}) }

// MainWith is Main with the binary's Options.
func MainWith(args []string, o Options) int {
	g := &globals{stderr: os.Stderr, opts: o}
	fs := flag.NewFlagSet("cri-server oci", flag.ContinueOnError)
	fs.StringVar(&g.root, "root", "/run/cri-server-oci", "state directory")
	fs.StringVar(&g.log, "log", "", "log file")
	fs.StringVar(&g.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&g.systemd, "systemd-cgroup", false, "systemd cgroup naming")
	fs.BoolVar(&g.debug, "debug", false, "debug logging")
	fs.Bool("rootless", false, "ignored")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(g.stderr, "usage: cri-server oci [global flags] <verb> [args]")
		return 2
	}
	v, ok := verbs[rest[0]]
	if !ok {
		fmt.Fprintf(g.stderr, "cri-server oci: unknown verb %q\n", rest[0])
		return 2
	}
	err := v(g, rest[1:])
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) && !strings.Contains(err.Error(), "not found") {
			err = fmt.Errorf("%w: not found", err)
		}
		fmt.Fprintf(g.stderr, "cri-server oci %s: %v\n", rest[0], err)
		slog.Error("command failed", "verb", rest[0], "err", err)
		return 1
	}
	return 0
}

func (g *globals) runtime() (*oci.Runtime, error) {
	lvl := slog.LevelWarn
	if g.debug {
		lvl = slog.LevelDebug
	}
	var w io.Writer = io.Discard
	if g.log != "" {
		f, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		w, lvl = f, min(lvl, slog.LevelInfo)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if g.logFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	log := slog.New(h)
	slog.SetDefault(log)
	drv := "cgroupfs"
	if g.systemd {
		drv = "systemd"
	}
	return oci.New(oci.Config{StateDir: g.root, CgroupDriver: drv, Logger: log, InitBinary: g.initBinary(log)})
}

// initBinary is the path of the Options' init, cached under the state
// root (oci.CachedBinary), or "" (this binary) without one or when it
// cannot be written.
func (g *globals) initBinary(log *slog.Logger) string {
	if len(g.opts.Init) == 0 || g.opts.InitDigest == "" {
		return ""
	}
	// The root as oci.New would make it (its mode matters to inits in
	// user namespaces), before the cache dir inside it.
	err := os.MkdirAll(g.root, 0o711)
	p := ""
	if err == nil {
		p, err = oci.CachedBinary(filepath.Join(g.root, ".init"), g.opts.InitDigest, g.opts.Init)
	}
	if err != nil {
		log.Warn("container init falls back to this binary", "err", err)
		return ""
	}
	return p
}

// parse parses flags placed before or after the positional arguments, as
// urfave/cli (runc's parser) accepts.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseID parses a verb's flags and wants at least the container id among
// the positional arguments, which it returns.
func parseID(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	return pos, needID(pos, 1)
}

func needID(pos []string, n int) error {
	if len(pos) < n {
		return errors.New("container id required")
	}
	return nil
}

func loadSpec(bundle string) (*specs.Spec, error) {
	s, _, err := loadSpecRaw(bundle)
	return s, err
}

// loadSpecRaw is loadSpec that also returns config.json's bytes.
func loadSpecRaw(bundle string) (*specs.Spec, []byte, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("read config.json: %w", err)
	}
	s, err := oci.DecodeSpec(b)
	if err != nil {
		return nil, nil, fmt.Errorf("decode config.json: %w", err)
	}
	return s, b, nil
}

type createOpts struct {
	bundle, consoleSocket, pidFile string
}

func createFlags(fs *flag.FlagSet, o *createOpts) {
	fs.StringVar(&o.bundle, "bundle", ".", "bundle dir")
	fs.StringVar(&o.bundle, "b", ".", "bundle dir")
	fs.StringVar(&o.consoleSocket, "console-socket", "", "unix socket to send the pty master to")
	fs.StringVar(&o.pidFile, "pid-file", "", "write the init pid here")
	fs.Bool("no-pivot", false, "ignored")
	fs.Bool("no-new-keyring", false, "ignored")
	fs.Int("preserve-fds", 0, "ignored")
}

func create(g *globals, id string, o *createOpts) (*oci.Runtime, *oci.Container, error) {
	rt, err := g.runtime()
	if err != nil {
		return nil, nil, err
	}
	bundle, err := filepath.Abs(o.bundle)
	if err != nil {
		return nil, nil, err
	}
	spec, raw, err := loadSpecRaw(bundle)
	if err != nil {
		return nil, nil, err
	}
	c, err := rt.CreateBundleRaw(context.Background(), id, bundle, spec, raw, oci.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	if err != nil {
		return nil, nil, err
	}
	if c.Console != nil && o.consoleSocket != "" {
		if err := sendConsole(o.consoleSocket, c.Console); err != nil {
			_ = rt.Delete(context.Background(), id, true)
			return nil, nil, err
		}
	}
	if o.pidFile != "" {
		if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(c.Pid)), 0o644); err != nil {
			return nil, nil, fmt.Errorf("write pid file: %w", err)
		}
	}
	return rt, c, nil
}

func sendConsole(path string, f *os.File) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("connect console socket: %w", err)
	}
	return unix.Sendmsg(fd, []byte("console"), unix.UnixRights(int(f.Fd())), nil, 0)
}

func cmdCreate(g *globals, args []string) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	o := &createOpts{}
	createFlags(fs, o)
	pos, err := parseID(fs, args)
	if err != nil {
		return err
	}
	_, _, err = create(g, pos[0], o)
	return err
}

func cmdRun(g *globals, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o := &createOpts{}
	createFlags(fs, o)
	detach := fs.Bool("detach", false, "do not wait")
	fs.BoolVar(detach, "d", false, "do not wait")
	keep := fs.Bool("keep", false, "keep the container after it exits")
	pos, err := parseID(fs, args)
	if err != nil {
		return err
	}
	rt, c, err := create(g, pos[0], o)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := rt.Start(ctx, pos[0]); err != nil {
		_ = rt.Delete(ctx, pos[0], true)
		return err
	}
	if *detach {
		return nil
	}
	if c.Console != nil && o.consoleSocket == "" {
		go func() { _, _ = io.Copy(os.Stdout, c.Console) }()
	}
	t0 := time.Now()
	st, err := c.Wait()
	if err != nil {
		return err
	}
	slog.Info("container exited", "container", pos[0], "code", st.ExitCode(), "waited", time.Since(t0).Round(time.Microsecond).String())
	if !*keep {
		if err := rt.Delete(ctx, pos[0], true); err != nil {
			return err
		}
	}
	return exitError{st.ExitCode()}
}

func simple(name string, f func(rt *oci.Runtime, id string) error) verb {
	return func(g *globals, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		pos, err := parseID(fs, args)
		if err != nil {
			return err
		}
		rt, err := g.runtime()
		if err != nil {
			return err
		}
		return f(rt, pos[0])
	}
}

var (
	cmdStart  = simple("start", func(rt *oci.Runtime, id string) error { return rt.Start(context.Background(), id) })
	cmdPause  = simple("pause", func(rt *oci.Runtime, id string) error { return rt.Pause(context.Background(), id) })
	cmdResume = simple("resume", func(rt *oci.Runtime, id string) error { return rt.Resume(context.Background(), id) })
	cmdState  = simple("state", func(rt *oci.Runtime, id string) error {
		st, err := rt.State(context.Background(), id)
		if err != nil {
			return err
		}
		return printJSON(st)
	})
)

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdKill(g *globals, args []string) error {
	fs := flag.NewFlagSet("kill", flag.ContinueOnError)
	all := fs.Bool("all", false, "every process")
	fs.BoolVar(all, "a", false, "every process")
	pos, err := parseID(fs, args)
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if len(pos) > 1 {
		if sig, err = parseSignal(pos[1]); err != nil {
			return err
		}
	}
	rt, err := g.runtime()
	if err != nil {
		return err
	}
	return rt.Kill(context.Background(), pos[0], sig, *all)
}

func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return unix.Signal(n), nil
	}
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func cmdDelete(g *globals, args []string) error {
	fs := flag.NewFlagSet("delete", flag.ContinueOnError)
	force := fs.Bool("force", false, "kill a running container")
	fs.BoolVar(force, "f", false, "kill a running container")
	pos, err := parseID(fs, args)
	if err != nil {
		return err
	}
	rt, err := g.runtime()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if !*force {
		// The runtime spec: deleting a container that is not stopped MUST
		// fail and leave it be; "created" is not stopped (runc 1.1 and
		// crun 1.8 delete it anyway; the CRI layer always forces).
		if st, err := rt.State(ctx, pos[0]); err == nil && st.Status == specs.StateCreated {
			return errdefs.FailedPrecondition("delete container %s: it is created, not stopped (use --force)", pos[0])
		}
	}
	return rt.Delete(ctx, pos[0], *force)
}
