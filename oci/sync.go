package oci

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The parent and the init speak length-prefixed JSON frames over a
// SOCK_STREAM socketpair; the init's end is always fd 3. File descriptors
// (the pty master) follow their announcing frame as SCM_RIGHTS on a one-byte
// message.
const (
	initSyncFd  = 3
	initStateFd = 4 // O_PATH fd of StateDir/<id>, to open exec.fifo after pivot_root
)

type msgType string

const (
	msgConfig    msgType = "config"    // parent -> init: what to set up
	msgHooks     msgType = "hooks"     // init -> parent: mounts done, run prestart/createRuntime
	msgHooksDone msgType = "hooksDone" // parent -> init: run createContainer, then go on
	msgConsole   msgType = "console"   // init -> parent: pty master follows
	msgReady     msgType = "ready"     // init -> parent: set up, waiting on the barrier
	msgError     msgType = "error"     // init -> parent: setup failed
	msgPid       msgType = "pid"       // constructor -> parent: the init forked into its new PID namespace
)

type syncMsg struct {
	Type   msgType      `json:"type"`
	Config *initConfig  `json:"config,omitempty"`
	Error  *initError   `json:"error,omitempty"`
	Times  *initTimes   `json:"times,omitempty"` // with msgReady
	Pid    int          `json:"pid,omitempty"`   // with msgPid
	State  *specs.State `json:"state,omitempty"` // with msgHooksDone: for the createContainer hooks
}

// syncNote is a syncMsg without a config, as it is encoded.
type syncNote struct {
	Type  msgType      `json:"type"`
	Error *initError   `json:"error,omitempty"`
	Times *initTimes   `json:"times,omitempty"`
	Pid   int          `json:"pid,omitempty"`
	State *specs.State `json:"state,omitempty"`
}

// initTimes are the init's milestones (Unix ns, the parent's clock too), so
// the parent can log where a create's time goes.
type initTimes struct {
	Main   int64 `json:"main"`   // InitMain entered: exec, C constructor, Go runtime and package init done
	Config int64 `json:"config"` // config received and decoded
	Rootfs int64 `json:"rootfs"` // mounts, pivot_root, masked and read-only paths done
}

// initConfig is everything the init needs; the spec travels whole so the init
// reads no file the container could have tampered with.
type initConfig struct {
	Exec         bool              `json:"exec,omitempty"` // join a running container instead of creating one
	ID           string            `json:"id"`
	Spec         *specs.Spec       `json:"-"`    // travels as Wire (see initSpec)
	Wire         *initSpec         `json:"spec"` // set by send, read by recv
	Process      *specs.Process    `json:"process"`
	Rootfs       string            `json:"rootfs"`
	Seccomp      []byte            `json:"seccomp,omitempty"` // BPF program compiled by the parent
	SeccompFlags uint              `json:"seccompFlags,omitempty"`
	CgroupPaths  map[string]string `json:"cgroupPaths,omitempty"`
	// CgroupMounts are the host's hierarchies when the init's mount
	// namespace is a copy of ours; nil makes the init read mountinfo.
	CgroupMounts []cgroupHier `json:"cgroupMounts,omitempty"`
	// MountFds are the init's fds of bind mounts the parent prepared
	// (idmap.go), in spec.Mounts order; -1 where it mounts by path.
	MountFds []int `json:"mountFds,omitempty"`
	// RootFromCwd: the rootfs is the init's working directory (userns.go).
	RootFromCwd bool `json:"rootFromCwd,omitempty"`
}

// syncConn is one end of the sync socket: the init's, a blocking fd, or
// the parent's, a pollable file (parentConn).
type syncConn struct {
	fd int
	f  *os.File
}

// parentConn is the parent's end, made non-blocking by initCmd: its reads
// wait in the runtime's netpoller, parking the goroutine rather than its
// thread. A thread blocked in read(2) while the init starts up (~2 ms)
// would have the Go runtime hand its P to a new thread and keep sysmon
// waking every 20 µs (~0.5 ms of CPU per create, taken from the init on a
// loaded machine); parked, the process sleeps until the init writes.
func parentConn(f *os.File) syncConn { return syncConn{fd: -1, f: f} }

func (c syncConn) send(m *syncMsg) error {
	if m.Config != nil && m.Config.Spec != nil {
		m.Config.Wire = toInitSpec(m.Config.Spec)
	}
	var v any = m
	if m.Config == nil {
		// The init sends only these: encoding/json builds the encoders of
		// a value's whole type graph on first use, and syncMsg's includes
		// the config's, which the init would pay for at every start.
		v = syncNote{Type: m.Type, Error: m.Error, Times: m.Times, Pid: m.Pid, State: m.State}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	buf := make([]byte, 4+len(b))
	binary.LittleEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	if c.f != nil {
		if _, err := c.f.Write(buf); err != nil {
			return fmt.Errorf("send %s message: %w", m.Type, err)
		}
		return nil
	}
	for len(buf) > 0 {
		n, err := unix.Write(c.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("send %s message: %w", m.Type, err)
		}
		buf = buf[n:]
	}
	return nil
}

func (c syncConn) readFull(b []byte) error {
	if c.f != nil {
		_, err := io.ReadFull(c.f, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF // the init died mid-frame: it is gone all the same
		}
		return err
	}
	for off := 0; off < len(b); {
		n, err := unix.Read(c.fd, b[off:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.EOF
		}
		off += n
	}
	return nil
}

func (c syncConn) recv() (*syncMsg, error) {
	var hdr [4]byte
	if err := c.readFull(hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("sync message of %d bytes", n)
	}
	b := make([]byte, n)
	if err := c.readFull(b); err != nil {
		return nil, err
	}
	m := &syncMsg{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("decode sync message: %w", err)
	}
	if m.Config != nil {
		m.Config.Spec = m.Config.Wire.spec()
	}
	return m, nil
}

func (c syncConn) sendFd(f int) error {
	return unix.Sendmsg(c.fd, []byte{'F'}, unix.UnixRights(f), nil, 0)
}

func (c syncConn) recvFd() (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	var oobn int
	var err error
	if c.f == nil {
		_, oobn, _, _, err = unix.Recvmsg(c.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	} else {
		var rc syscall.RawConn
		if rc, err = c.f.SyscallConn(); err == nil {
			rerr := rc.Read(func(fd uintptr) bool {
				_, oobn, _, _, err = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
				return err != unix.EAGAIN
			})
			if err == nil {
				err = rerr
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receive fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive fd: bad control message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive fd: bad rights")
	}
	return os.NewFile(uintptr(fds[0]), "console"), nil
}
