package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/store"
)

// AddTimeout bounds one CNI ADD; a plugin that hangs must not hold the
// kubelet's RunPodSandbox forever (it retries after its own 4 min).
var AddTimeout = 2 * time.Minute

// Run sets up a pod from its CRI config and returns its record. Any
// failure undoes every step done so far: no netns, veth, IP, cgroup or file
// is left behind.
func (m *Manager) Run(ctx context.Context, cfg *runtime.PodSandboxConfig, handler string) (_ *Pod, retErr error) {
	plan, err := planRun(cfg, handler)
	if err != nil {
		return nil, err
	}
	m.pool.enter()
	defer m.pool.leave()
	md := cfg.GetMetadata()
	var id string
	if plan.poolable() {
		id = m.pool.take()
	}
	pooled := id != ""
	if !pooled {
		id = store.NewID()
	}
	dir := filepath.Join(m.opt.StateDir, "pods", id)
	name := podName(md)
	if err := m.names.Reserve(name, id); err != nil {
		if pooled {
			if err := dropSet(dir); err != nil {
				m.log.Error("remove pooled pod namespaces; the next start sweeps them", "dir", id, "error", err)
			}
		}
		return nil, err
	}
	p := &Pod{
		ID: id, Metadata: md, State: StateCreating, CreatedAt: time.Now().UnixNano(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), RuntimeHandler: handler,
		Hostname: plan.hostname, LogDirectory: cfg.GetLogDirectory(), NamespaceOptions: plan.nso,
		Dir: dir, CgroupParent: plan.parent,
		HostnamePath: filepath.Join(dir, "hostname"),
		HostsPath:    filepath.Join(dir, "hosts"),
		ResolvPath:   filepath.Join(dir, "resolv.conf"),
		ShmPath:      filepath.Join(dir, "shm"),
	}
	e := &entry{pod: p}
	e.op.Lock()
	defer e.op.Unlock()
	m.mu.Lock()
	m.pods[id] = e
	m.mu.Unlock()
	log := m.log.With("pod", id, "name", name)
	// No record is stored until the pod is ready: what is created before
	// that lives at fixed paths under dir (the CNI attachment too, before
	// ADD), and a daemon that dies meanwhile finds the dir without a
	// record on start and sweeps it. That saves the kubelet's hot path a
	// store commit.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		m.forget(id, name)
		return nil, fmt.Errorf("create pod dir: %w", err)
	}
	defer func() {
		if retErr == nil {
			return
		}
		// A fresh context: the caller's may be what expired.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := m.teardown(cctx, p, true); err != nil {
			// The record (or dir) stays: the next start retries.
			log.Error("undo failed pod setup; retried on next start", "error", err)
		} else {
			m.db.Delete(store.BucketPods, id)
		}
		m.forget(id, name)
	}()

	t0 := time.Now()
	var tm stepTimes
	if err := m.setupKernel(p, plan, pooled, &tm); err != nil {
		return nil, err
	}
	tKernel := time.Since(t0)
	if err := m.setupNetwork(ctx, p, cfg, &tm); err != nil {
		return nil, err
	}
	tNet := time.Since(t0)
	if err := applyInNetns(p.NetNS, plan.devSysctls); err != nil {
		return nil, err
	}
	if err := writePodFiles(p, cfg); err != nil {
		return nil, err
	}
	if err := ownPodFiles(p, plan.userns); err != nil {
		return nil, err
	}
	p.State = StateReady
	t1 := time.Now()
	if err := m.storeReady(e, p); err != nil {
		return nil, err
	}
	tm.store += time.Since(t1)
	log.Info("pod ready", "ips", p.IPs, "hostNetwork", plan.hostNet, "pooled", pooled,
		"kernel_ms", ms(tKernel), "ns_ms", ms(tm.ns), "shm_ms", ms(tm.shm), "network_ms", ms(tNet-tKernel), "add_ms", ms(tm.add), "add_wait_ms", ms(tm.addWait), "journal_ms", ms(tm.journal), "store_ms", ms(tm.store), "total_ms", ms(time.Since(t0)))
	return clonePod(p), nil
}

func writePodFiles(p *Pod, cfg *runtime.PodSandboxConfig) error {
	if err := writeFileAtomic(p.HostnamePath, []byte(p.Hostname+"\n")); err != nil {
		return err
	}
	hosts := hostsFile(p.Hostname, p.IPs)
	if p.HostNetwork() {
		b, err := os.ReadFile("/etc/hosts")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read host /etc/hosts: %w", err)
		}
		hosts = b
	}
	if err := writeFileAtomic(p.HostsPath, hosts); err != nil {
		return err
	}
	resolv, err := resolvFile(cfg.GetDnsConfig())
	if err != nil {
		return err
	}
	return writeFileAtomic(p.ResolvPath, resolv)
}

// setupNetwork runs CNI ADD in the pod's netns. The attachment is recorded
// (teardown registered) before ADD, since IPAM can allocate on a failed ADD.
func (m *Manager) setupNetwork(ctx context.Context, p *Pod, cfg *runtime.PodSandboxConfig, tm *stepTimes) error {
	if p.HostNetwork() {
		return nil
	}
	md := p.Metadata
	a := &cni.Attachment{ID: p.ID, NetNS: p.NetNS, Namespace: md.Namespace, Name: md.Name, UID: md.Uid}
	for _, pm := range cfg.GetPortMappings() {
		if pm.HostPort <= 0 {
			continue
		}
		proto := "tcp"
		switch pm.Protocol {
		case runtime.Protocol_UDP:
			proto = "udp"
		case runtime.Protocol_SCTP:
			proto = "sctp"
		}
		a.PortMappings = append(a.PortMappings, cni.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: proto, HostIP: pm.HostIp,
		})
	}
	if err := m.cni.Prepare(a); err != nil {
		return errdefs.New(errdefs.ErrUnavailable, "network not ready: %v", err)
	}
	p.Net, p.NetPending = a, true
	// Teardown registered before ADD (IPAM can allocate on a failed ADD),
	// in the pod dir rather than the store: the start-up sweep of dirs
	// without a record runs DEL from it (sweepOrphanDirs), and a store
	// commit here cost every pod an fsync queued behind the others' under
	// load. The dir is on the state tmpfs, which a reboot empties while
	// host-local keeps the IP on disk: the network journal on the root disk
	// (journalNet) covers that until the record's store commit.
	t0 := time.Now()
	if err := writeAttachment(p.Dir, a); err != nil {
		return err
	}
	if err := m.journalNet(p.ID, a); err != nil {
		return fmt.Errorf("journal CNI attachment: %w", err)
	}
	tm.journal = time.Since(t0)
	actx, cancel := context.WithTimeout(ctx, AddTimeout)
	defer cancel()
	t0 = time.Now()
	res, err := m.cni.Add(actx, a)
	if err != nil {
		return err
	}
	tm.add, tm.addWait = time.Since(t0), res.Waited
	p.IPs, p.CNIResult = res.IPs, res.Raw
	return nil
}

// stepTimes is where a pod's setup spent its time, for the log.
type stepTimes struct {
	ns, shm, add, store, journal time.Duration
	addWait                      time.Duration // part of add: waiting for a turn (cni.Manager.SetMaxParallelAdd)
}

// forget drops an in-memory pod and its name.
func (m *Manager) forget(id, name string) {
	m.mu.Lock()
	delete(m.pods, id)
	m.mu.Unlock()
	m.names.Release(name)
}

// runPlan is a validated pod config: what Run will create.
type runPlan struct {
	nso        *runtime.NamespaceOption
	hostNet    bool
	ownIPC     bool
	sharedPID  bool
	sysctls    []sysctl // set when the namespaces are made
	devSysctls []sysctl // set in the netns after CNI ADD made the devices
	hostname   string
	parent     string
	userns     *userNSPlan // nil: the host's user namespace
}

// planRun validates cfg before anything is created or reserved.
func planRun(cfg *runtime.PodSandboxConfig, handler string) (*runPlan, error) {
	if handler != "" {
		return nil, errdefs.InvalidArgument("unknown runtime handler %q", handler)
	}
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return nil, errdefs.InvalidArgument("pod metadata needs name, namespace and uid")
	}
	nso := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nso.GetPid() == runtime.NamespaceMode_TARGET {
		return nil, errdefs.InvalidArgument("pod PID namespace mode TARGET is only valid for containers")
	}
	hostNet := nso.GetNetwork() == runtime.NamespaceMode_NODE
	ownIPC := nso.GetIpc() != runtime.NamespaceMode_NODE
	sysctls, err := parseSysctls(cfg.GetLinux().GetSysctls(), !hostNet, ownIPC)
	if err != nil {
		return nil, err
	}
	// No hostname given: the node's, as a fresh UTS namespace starts with
	// it anyway (what containerd's pods show too).
	hostname := cfg.GetHostname()
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	if len(hostname) > 64 {
		return nil, errdefs.InvalidArgument("hostname %q is longer than 64 bytes", hostname)
	}
	parent := cfg.GetLinux().GetCgroupParent()
	if err := validCgroupParent(parent); err != nil {
		return nil, err
	}

	early, late := splitSysctls(sysctls)
	return &runPlan{
		nso: nso, hostNet: hostNet, ownIPC: ownIPC, sharedPID: nso.GetPid() == runtime.NamespaceMode_POD,
		sysctls: early, devSysctls: late, hostname: hostname, parent: parent, userns: planUserNS(cfg),
	}, nil
}

// setupKernel creates the pod's namespaces (or configures the pooled set
// already in its dir), /dev/shm and cgroup. What it made is in p when it
// fails, for the caller's teardown.
func (m *Manager) setupKernel(p *Pod, plan *runPlan, pooled bool, tm *stepTimes) error {
	t0 := time.Now()
	req := nsRequest{
		dir: p.Dir, net: !plan.hostNet, ipc: plan.ownIPC, uts: !plan.hostNet,
		pid: plan.sharedPID, hostname: plan.hostname, sysctls: plan.sysctls,
	}
	var ns nsResult
	var err error
	switch {
	case plan.userns != nil:
		ns, p.UserNS, err = createUserNamespaces(req, plan.userns)
	case pooled:
		ns, err = joinNamespaces(req)
	default:
		ns, err = createNamespaces(req)
	}
	p.NetNS, p.IPCNS, p.UTSNS, p.PIDNS, p.InitPID = ns.net, ns.ipc, ns.uts, ns.pid, ns.initPID
	tm.ns = time.Since(t0)
	if err != nil {
		return err
	}
	t0 = time.Now()
	if plan.ownIPC {
		if err := mountShm(p.ShmPath, m.opt.ShmSize); err != nil {
			return err
		}
	} else {
		p.ShmPath = "/dev/shm"
	}
	tm.shm = time.Since(t0)
	if p.CgroupParent == "" {
		return nil
	}
	// The cgroup dirs made are recorded by the pod's store commit, so only
	// they are ever removed; until then the journal in the pod dir lists
	// them for the start-up sweep.
	journal, err := os.OpenFile(filepath.Join(p.Dir, cgroupJournal), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open cgroup journal: %w", err)
	}
	p.Cgroups, err = createCgroup(m.opt.CgroupRoot, p.CgroupParent, journal)
	journal.Close()
	if err != nil {
		return err
	}
	if p.InitPID > 0 {
		return joinCgroup(m.opt.CgroupRoot, p.CgroupParent, p.InitPID)
	}
	return nil
}
