// Command cri-server is the whole runtime in one binary: the CRI daemon
// (serve), and the subcommands that the daemon re-executes or that operators
// use. It parses flags and wires packages together; it holds no logic.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/oci/cli"
	// Joins mount and user namespaces before the Go runtime starts, for
	// exec into a running container; inert unless the executor asks.
	_ "github.com/cri-server/cri-server/oci/nsenter"
	"github.com/cri-server/cri-server/sandbox"
	"github.com/cri-server/cri-server/server"
	"github.com/cri-server/cri-server/version"
)

const usage = `usage: cri-server [command] [flags]

commands:
  serve     serve the CRI on the socket (the default)
  config    print the effective configuration and exit
  version   print the version and exit
  oci       the runc-compatible command line: cri-server oci [--root DIR] <verb> ...
`

func main() {
	// Re-executions of this binary come first, before any other work:
	// each runs in a child the daemon started and never returns here.
	// With the embedded shim (shim_embed.go) the daemon runs that as
	// monitor and init instead; the command line (oci) and a plain build
	// still come here.
	if sandbox.IsPodInit(os.Args) {
		sandbox.PodInitMain() // a shared-PID pod's reaper
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "init":
			oci.InitMain() // the container's init, before it execs the user's process
		case "monitor":
			monitor.NewExecutor = monitor.OCIExecutor
			os.Exit(monitor.Main(os.Args[2:])) // a container's monitor
		case "oci":
			// runc-compatible command line; its containers' init is the shim
			os.Exit(cli.MainWith(os.Args[2:], cli.Options{Init: shimBinary, InitDigest: shimDigest}))
		}
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "%s %s\n", version.RuntimeName, version.Version)
		return 0
	case "serve", "config":
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cri-server: unknown command %q\n%s", cmd, usage)
		return 2
	}

	fs := flag.NewFlagSet("cri-server "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "configuration file (TOML)")
	root := fs.String("root", "", "persistent root dir (overrides the file)")
	state := fs.String("state", "", "volatile state dir (overrides the file)")
	listen := fs.String("listen", "", "CRI unix socket path (overrides the file)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides the file)")
	driver := fs.String("cgroup-driver", "", "cgroupfs or systemd (overrides the file)")
	cniConf := fs.String("cni-conf-dir", "", "CNI config dir (overrides the file)")
	var cniBin stringList
	fs.Var(&cniBin, "cni-bin-dir", "CNI plugin dir, repeatable (overrides the file)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cri-server %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*cfgPath, explicit)
	if err != nil {
		fmt.Fprintf(stderr, "cri-server: %v\n", err)
		return 1
	}
	override(&cfg.Root, *root)
	override(&cfg.State, *state)
	override(&cfg.Listen, *listen)
	override(&cfg.LogLevel, *logLevel)
	override(&cfg.CgroupDriver, *driver)
	override(&cfg.CNI.ConfDir, *cniConf)
	if len(cniBin) > 0 {
		cfg.CNI.BinDirs = cniBin
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "cri-server: flags: %v\n", err)
		return 1
	}
	if cmd == "config" {
		fmt.Fprint(stdout, cfg.TOML())
		return 0
	}

	log := newLogger(stderr, cfg.LogLevel)
	if n := closeInheritedOnExec(); n > 0 {
		log.Info("inherited file descriptors marked close-on-exec", "count", n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := server.Run(ctx, cfg, log, server.WithShim(shimBinary)); err != nil {
		log.Error("cri-server failed", "error", err)
		return 1
	}
	return 0
}

// closeInheritedOnExec marks every descriptor above stderr that the daemon
// inherited as close-on-exec, so that no monitor or container (which
// outlive the daemon) holds its parent's pipes or sockets open. It returns
// how many it marked.
func closeInheritedOnExec() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC != 0 {
			continue // the dir's own fd, or already marked
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags|unix.FD_CLOEXEC); err == nil {
			n++
		}
	}
	return n
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lv}))
}
