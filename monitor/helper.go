package monitor

// The Go halves of the C monitor (package monitor/cmon): the executor is
// Go, so the C monitor runs it in short-lived children of its own.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Verb runs the monitor's entry point that args (os.Args[1:]) names:
// `monitor <bundle>` (the Go monitor, when the C one is not linked or
// CRI_SERVER_GO_MONITOR=1), `monitor-create <bundle> <have>` and `monitor-op
// <bundle> start|kill <signal>` (run by the C monitor). ok is false for any
// other args.
func Verb(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "monitor":
		return Main(args[1:]), true
	case "monitor-create":
		return CreateMain(args[1:]), true
	case "monitor-op":
		return OpMain(args[1:]), true
	}
	return 0, false
}

// execFifoer is an executor whose Start is only the read of one byte from
// the init's exec fifo (and nothing else, such as poststart hooks, for
// this spec): the C monitor then starts the container itself.
type execFifoer interface {
	ExecFifo(id string, spec *specs.Spec) string
}

// oomFiler is an executor that can name the file OOMKillCount reads (the
// memory cgroup's oom_control or memory.events), for the C monitor to read
// at the init's exit.
type oomFiler interface {
	OOMFile(id string, pid int) string
}

// helperMonitor opens the monitor's own log and builds the executor from
// the bundle (the cwd).
func helperMonitor(bundle string) (*monitor, *os.File, error) {
	lf, err := os.OpenFile(filepath.Join(bundle, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	m, err := newMonitor(bundle, slog.New(slog.NewTextHandler(lf, nil)))
	if err != nil {
		lf.Close()
		return nil, nil, err
	}
	return m, lf, nil
}

// CreateMain is `monitor-create <bundle> <have>`: it creates the container
// with the stdio the C monitor made (fd 4 stdin, 5 stdout, 6 stderr, each
// only where have, three of '0' or '1', says 1) and answers on the socket at fd 3, then exits: the init is
// reparented to the C monitor, its subreaper.
func CreateMain(args []string) int {
	// The socket stays a bare fd: an *os.File's finalizer could close it
	// before the answer is sent.
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err != nil || len(args) != 2 || len(args[1]) != 3 {
		fmt.Fprintln(os.Stderr, "usage: cri-server-shim monitor-create <bundle> (run by the monitor)")
		return 2
	}
	// Not one of them may reach the init but through oci.IO.
	for fd := 3; fd <= 6; fd++ {
		unix.CloseOnExec(fd)
	}
	reply, console := createReply(args[0], args[1])
	var oob []byte
	if console != nil {
		oob = unix.UnixRights(int(console.Fd()))
	}
	if err := unix.Sendmsg(3, []byte(reply), oob, nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, "monitor-create: answer the monitor:", err)
		return 1
	}
	return 0
}

func createReply(bundle, have string) (string, *os.File) {
	m, lf, err := helperMonitor(bundle)
	if err != nil {
		return "err\n" + oneLine(err), nil
	}
	defer lf.Close()
	var io IO
	for i, dst := range []**os.File{&io.Stdin, &io.Stdout, &io.Stderr} {
		if have[i] == '1' {
			*dst = os.NewFile(uintptr(4+i), "stdio")
		}
	}
	proc, err := m.ex.Create(context.Background(), m.cfg.ID, m.spec, io)
	for _, f := range []*os.File{io.Stdin, io.Stdout, io.Stderr} {
		if f != nil {
			f.Close()
		}
	}
	if err != nil {
		m.log.Error("create container", "error", err)
		return "err\n" + oneLine(fmt.Errorf("create container: %w", err)), nil
	}
	oom0, _ := m.ex.OOMKillCount(context.Background(), m.cfg.ID)
	fifo, oomFile := "-", "-"
	if f, ok := m.ex.(execFifoer); ok {
		if p := f.ExecFifo(m.cfg.ID, m.spec); p != "" {
			fifo = p
		}
	}
	if f, ok := m.ex.(oomFiler); ok {
		if p := f.OOMFile(m.cfg.ID, proc.Pid()); p != "" {
			oomFile = p
		}
	}
	if strings.ContainsRune(fifo+oomFile, '\n') {
		fifo, oomFile = "-", "-"
	}
	return fmt.Sprintf("ok\n%d\n%d\n%s\n%s\n", proc.Pid(), oom0, fifo, oomFile), proc.Console()
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// OpMain is `monitor-op <bundle> start` or `monitor-op <bundle> kill
// <signal>` (to every process of the container): the executor's Start (with
// its hooks) or Kill, for the C monitor. An error is printed on stdout.
func OpMain(args []string) int {
	if len(args) < 2 {
		fmt.Println("usage: cri-server-shim monitor-op <bundle> start|kill <signal>")
		return 2
	}
	m, lf, err := helperMonitor(args[0])
	if err != nil {
		fmt.Println(oneLine(err))
		return 1
	}
	defer lf.Close()
	ctx := context.Background()
	switch {
	case args[1] == "start" && len(args) == 2:
		err = m.ex.Start(ctx, m.cfg.ID)
	case args[1] == "kill" && len(args) == 3:
		var sig int
		if sig, err = strconv.Atoi(args[2]); err == nil {
			err = m.ex.Kill(ctx, m.cfg.ID, unix.Signal(sig), true)
		}
	default:
		err = fmt.Errorf("unknown monitor op %q", strings.Join(args[1:], " "))
	}
	if err != nil {
		fmt.Println(oneLine(err))
		return 1
	}
	return 0
}

// CConfigFile is the line-based copy of Config the C monitor reads.
const CConfigFile = "monitor.cfg"

// writeCConfig writes cfg as "key value" lines for the C monitor.
func writeCConfig(bundle string, cfg Config, terminal bool) error {
	if strings.ContainsAny(cfg.ID+cfg.LogPath, "\n\x00") {
		return fmt.Errorf("write %s: a newline in the id or log path", CConfigFile)
	}
	b01 := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	data := fmt.Sprintf("id %s\nlog %s\nstdin %d\nstdin_once %d\nterminal %d\n", cfg.ID, cfg.LogPath,
		b01(cfg.Stdin), b01(cfg.StdinOnce), b01(terminal))
	if err := os.WriteFile(filepath.Join(bundle, CConfigFile), []byte(data), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", CConfigFile, err)
	}
	return nil
}
