// Package sandbox owns pods: the namespaces held for a pod's life (net, ipc
// and uts pinned by bind mounts with no process behind them, and pid with a
// tiny reaping init when shared), the pod's hostname, hosts, resolv.conf and
// /dev/shm, its cgroup, its network through cni/, and the pod records in the
// store. It knows the CRI's pod config but nothing of containers beyond the
// ContainerStopper hook.
package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/store"
)

// State of a pod, as the CRI sees it, plus the one state it never sees.
//
//	RunPodSandbox:  creating --(all set up)--> ready --Stop--> notready --Remove--> gone
//	                   |                                           ^
//	                   +--(daemon died half way: cleaned on start)-+--> gone
type State string

const (
	StateCreating State = "creating" // half set up; never reported
	StateReady    State = "ready"
	StateNotReady State = "notready"
)

// Pod is the durable record of one pod. The containers engineer reads the
// paths to put containers in the pod's namespaces and mounts.
type Pod struct {
	ID             string                      `json:"id"`
	Metadata       *runtime.PodSandboxMetadata `json:"metadata"`
	State          State                       `json:"state"`
	CreatedAt      int64                       `json:"createdAt"` // unix nanoseconds
	Labels         map[string]string           `json:"labels,omitempty"`
	Annotations    map[string]string           `json:"annotations,omitempty"`
	RuntimeHandler string                      `json:"runtimeHandler,omitempty"`
	Hostname       string                      `json:"hostname"`
	LogDirectory   string                      `json:"logDirectory,omitempty"`
	// NamespaceOptions as asked (nil means all POD/CONTAINER defaults).
	NamespaceOptions *runtime.NamespaceOption `json:"namespaceOptions,omitempty"`

	// Dir is the pod's state dir; everything below is inside it.
	Dir string `json:"dir"`
	// Pinned namespace files; "" means the host's namespace (or, for PID,
	// a namespace per container).
	NetNS string `json:"netns,omitempty"`
	IPCNS string `json:"ipcns,omitempty"`
	UTSNS string `json:"utsns,omitempty"`
	PIDNS string `json:"pidns,omitempty"`
	// UserNS is the pod's user namespace (hostUsers: false, userns.go).
	UserNS string `json:"userns,omitempty"`
	// InitPID is the reaping init of a shared PID namespace, 0 if none.
	InitPID int `json:"initPid,omitempty"`

	HostnamePath string `json:"hostnamePath"`
	HostsPath    string `json:"hostsPath"`
	ResolvPath   string `json:"resolvPath"`
	// ShmPath is the pod's /dev/shm tmpfs, or the host's /dev/shm when the
	// pod uses the host IPC namespace.
	ShmPath string `json:"shmPath"`

	// CgroupParent is the kubelet's cgroup_parent; containers go below it.
	CgroupParent string `json:"cgroupParent,omitempty"`
	// Cgroups lists the cgroup dirs this pod created (outermost first);
	// only these are ever removed.
	Cgroups []string `json:"cgroups,omitempty"`

	IPs []string `json:"ips,omitempty"`
	// CNIResult is the raw ADD result, for verbose status.
	CNIResult []byte `json:"cniResult,omitempty"`
	// Net is the CNI attachment; NetPending says DEL has yet to succeed.
	Net        *cni.Attachment `json:"net,omitempty"`
	NetPending bool            `json:"netPending,omitempty"`
}

// HostNetwork says whether the pod uses the node's network namespace.
func (p *Pod) HostNetwork() bool {
	return p.NamespaceOptions.GetNetwork() == runtime.NamespaceMode_NODE
}

// Name is the name the registrar reserves, unique per pod incarnation.
func (p *Pod) Name() string { return podName(p.Metadata) }

func podName(m *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{m.GetName(), m.GetNamespace(), m.GetUid(), itoa(m.GetAttempt())}, "_")
}

// ContainerStopper is how the server lets the pod's containers go first:
// StopPodSandbox calls StopPodContainers before tearing the network down,
// RemovePodSandbox calls RemovePodContainers before removing namespaces.
// Both must be idempotent and succeed when the pod has no containers.
type ContainerStopper interface {
	StopPodContainers(ctx context.Context, podID string) error
	RemovePodContainers(ctx context.Context, podID string) error
}

// Options configures a Manager.
type Options struct {
	StateDir string // pods live in StateDir/pods/<id>
	DB       *store.DB
	CNI      *cni.Manager
	Log      *slog.Logger
	// ShmSize is the size of each pod's /dev/shm in bytes (default 64Mi).
	ShmSize int64
	// CgroupRoot is where the v1 hierarchies are mounted (default
	// /sys/fs/cgroup); a seam for tests.
	CgroupRoot string
	// PoolSize is how many pods' namespaces are kept made ahead (nsPool;
	// 0: none, each pod makes its own).
	PoolSize int
	// NetJournalDir, on a disk that outlives a reboot, keeps each CNI
	// attachment until its pod's record is stored (netjournal.go); ""
	// keeps only the state dir's copy.
	NetJournalDir string
}

// Manager runs and tears down pods and keeps their records.
type Manager struct {
	opt   Options
	log   *slog.Logger
	cni   *cni.Manager
	db    *store.DB
	names *store.Registrar

	mu      sync.Mutex
	pods    map[string]*entry
	stopper ContainerStopper
	pool    *nsPool // nil: every pod makes its own namespaces
	netj    netJournal
	// storing counts the ready pods' store commits still in flight
	// (storeReady); Close waits for them.
	storing sync.WaitGroup
}

// entry serialises operations on one pod; pod is replaced, never mutated
// in place, so readers can hold an old copy safely.
type entry struct {
	op      sync.Mutex
	pod     *Pod
	removed bool // set under op by Remove: a racing Stop must not re-store it
	// stored, when not nil, is closed once Run's store commit of the ready
	// pod is done; every later write of the pod's record waits for it
	// (under op), so the store never sees them out of order.
	stored chan struct{}
}

// SetContainerStopper installs the hook Stop and Remove call first.
func (m *Manager) SetContainerStopper(cs ContainerStopper) {
	m.mu.Lock()
	m.stopper = cs
	m.mu.Unlock()
}

// Get returns a copy of the pod with id, or a NotFound error. An unambiguous
// id prefix is accepted, as crictl passes shortened ids.
func (m *Manager) Get(id string) (*Pod, error) {
	e, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return clonePod(e.pod), nil
}

func (m *Manager) lookup(id string) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == "" {
		return nil, errdefs.InvalidArgument("pod sandbox id is empty")
	}
	if e, ok := m.pods[id]; ok && e.pod.State != StateCreating {
		return e, nil
	}
	var found *entry
	for k, e := range m.pods {
		if strings.HasPrefix(k, id) && e.pod.State != StateCreating {
			if found != nil {
				return nil, errdefs.InvalidArgument("pod sandbox id prefix %q is ambiguous", id)
			}
			found = e
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("pod sandbox %s", id)
	}
	return found, nil
}

// List returns copies of every pod that is set up (ready or not ready),
// oldest first.
func (m *Manager) List() []*Pod {
	m.mu.Lock()
	out := make([]*Pod, 0, len(m.pods))
	for _, e := range m.pods {
		if e.pod.State != StateCreating {
			out = append(out, clonePod(e.pod))
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out
}

// clonePod copies the top level; maps and slices are never mutated after
// a record is published, so sharing them is safe.
func clonePod(p *Pod) *Pod {
	c := *p
	return &c
}

// update publishes a copy of p as the pod's new record, durably first;
// the caller keeps p to itself.
func (m *Manager) update(e *entry, p *Pod) error {
	e.waitStored()
	if err := m.db.Put(store.BucketPods, p.ID, p); err != nil {
		return err
	}
	c := clonePod(p)
	m.mu.Lock()
	e.pod = c
	m.mu.Unlock()
	return nil
}

func itoa(n uint32) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = digits[n%10]
		n /= 10
	}
	return string(b[i:])
}

// InitGone says whether a shared PID namespace lost its init (killed, or
// ended by a SIGTERM from one of the pod's own containers): the namespace
// is dead to new processes, so the pod can no longer run containers and is
// reported not ready, as a pod whose pause container died. The pinned
// namespace and the live init's namespace are compared by inode, so a pid
// reused after a daemon restart is not mistaken for the init.
func (p *Pod) InitGone() bool {
	if p.InitPID <= 0 || p.PIDNS == "" {
		return false
	}
	var pinned, live unix.Stat_t
	if err := unix.Stat(p.PIDNS, &pinned); err != nil {
		return true
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", p.InitPID), &live); err != nil {
		return true
	}
	return pinned.Ino != live.Ino || pinned.Dev != live.Dev
}

// waitStored waits for Run's store commit of the pod, if one is in
// flight. The caller holds e.op.
func (e *entry) waitStored() {
	if e.stored != nil {
		<-e.stored
		e.stored = nil
	}
}

// Close tears down the namespaces kept made ahead and waits for the store
// commits of pods made ready; the store must stay open until it returns.
// No RunPodSandbox may be in flight.
func (m *Manager) Close() {
	m.pool.close()
	m.storing.Wait()
	m.netj.close()
}
