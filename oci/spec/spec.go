// Package spec owns the translation from the kubelet's request (CRI
// ContainerConfig and PodSandboxConfig) plus the image's config into an OCI
// runtime spec. It is the one place where cri-api types meet runtime-spec
// types, and it is nearly pure: what it needs from the daemon (rootfs, pod
// namespace paths, pod files, the daemon's own oom_score_adj, the node's
// security defaults) arrives in Input, so it is table-tested without root.
// It reads the host only for what the spec must carry: device numbers, a
// seccomp localhost profile, the capabilities the daemon holds.
package spec

import (
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
)

// CRI annotations set on every container, read by tools that inspect specs
// (containerd's names, so existing tooling keeps working).
const (
	AnnotationContainerType  = "io.kubernetes.cri.container-type"
	AnnotationContainerName  = "io.kubernetes.cri.container-name"
	AnnotationSandboxID      = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName    = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNS      = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID     = "io.kubernetes.cri.sandbox-uid"
	AnnotationImageName      = "io.kubernetes.cri.image-name"
	ContainerTypeContainer   = "container"
	defaultPath              = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	defaultShmSize           = 64 << 20
	defaultCPUPeriod         = 100000
	defaultMinOOMScoreAdjust = -1000
)

// Input is everything Generate needs. Paths are host paths already resolved
// by their owners (imagesvc for Rootfs, sandbox for the pod's files).
type Input struct {
	ID        string
	Config    *runtime.ContainerConfig
	Sandbox   *runtime.PodSandboxConfig
	SandboxID string
	Image     imagespec.ImageConfig
	ImageName string
	Rootfs    string
	// NetNS, IPCNS, UTSNS, PIDNS: pinned namespace paths of the pod; "" means
	// a new namespace (host namespaces are taken from Sandbox's options).
	// For PID mode TARGET, PIDNS is the target container's namespace.
	NetNS, IPCNS, UTSNS, PIDNS string
	// UserNS is the pod's pinned user namespace (hostUsers: false), "" for
	// the host's.
	UserNS                                       string
	HostnamePath, HostsPath, ResolvPath, ShmPath string
	CgroupParent                                 string
	// DaemonOOMScoreAdj is the daemon's own /proc/self/oom_score_adj; without
	// CAP_SYS_RESOURCE the kernel refuses any lower value for a child.
	DaemonOOMScoreAdj int
	CapSysResource    bool
	// DefaultCapabilities replaces DefaultCapabilities() when not nil (the
	// config's list: CRI-O ships a smaller set than containerd).
	DefaultCapabilities []string
	// LSMs are the security modules the node has (HostLSMs).
	LSMs LSMs
	Log  *slog.Logger
}

// Generate builds the spec. Errors wrap errdefs.ErrInvalidArgument and name
// the offending field.
func Generate(in Input) (*specs.Spec, error) {
	c := in.Config
	if c == nil || c.Metadata == nil || c.Metadata.Name == "" {
		return nil, errdefs.InvalidArgument("container config: metadata.name is required")
	}
	if in.Rootfs == "" || !filepath.IsAbs(in.Rootfs) {
		return nil, errdefs.InvalidArgument("rootfs %q is not an absolute path", in.Rootfs)
	}
	args, err := Args(c, in.Image)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: in.Rootfs, Readonly: c.GetLinux().GetSecurityContext().GetReadonlyRootfs()},
		Hostname: in.Sandbox.GetHostname(),
		Process: &specs.Process{
			Args:            args,
			Env:             Env(in.Image.Env, c.Envs),
			Cwd:             workDir(c, in.Image),
			Terminal:        c.Tty,
			NoNewPrivileges: c.GetLinux().GetSecurityContext().GetNoNewPrivs(),
			Rlimits:         []specs.POSIXRlimit{defaultNofile(in.Log)},
		},
		Mounts:      DefaultMounts(),
		Annotations: annotations(in),
		Linux: &specs.Linux{
			MaskedPaths:   MaskedPaths(),
			ReadonlyPaths: ReadonlyPaths(),
			Namespaces:    namespaces(in),
			CgroupsPath:   cgroupsPath(in),
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		},
	}
	if !hasUTS(s.Linux.Namespaces) {
		// The host's UTS namespace (host network): its names are the
		// node's, which the executor refuses to set.
		s.Hostname = ""
	}
	if err := setUser(s, in); err != nil {
		return nil, err
	}
	if err := setUserNS(s, in); err != nil {
		return nil, err
	}
	if err := addPodMounts(s, in); err != nil {
		return nil, err
	}
	if err := addMounts(s, c.Mounts); err != nil {
		return nil, err
	}
	if err := addDevices(s, c.Devices); err != nil {
		return nil, err
	}
	if err := setResources(s, in); err != nil {
		return nil, err
	}
	if err := applySecurity(s, in); err != nil {
		return nil, err
	}
	return s, nil
}

// Args merges the kubelet's command/args with the image's entrypoint/cmd the
// way Docker and the kubelet document: command replaces the entrypoint (and
// drops the image's cmd); args alone replace cmd.
func Args(c *runtime.ContainerConfig, img imagespec.ImageConfig) ([]string, error) {
	var out []string
	switch {
	case len(c.Command) > 0:
		out = append(append(out, c.Command...), c.Args...)
	case len(c.Args) > 0:
		out = append(append(out, img.Entrypoint...), c.Args...)
	default:
		out = append(append(out, img.Entrypoint...), img.Cmd...)
	}
	if len(out) == 0 {
		return nil, errdefs.InvalidArgument("container %q: no command specified and the image has no entrypoint or cmd", c.Metadata.Name)
	}
	return out, nil
}

// Env merges the image's env with the kubelet's; the kubelet wins on a key,
// keeping the image's position. PATH is defaulted when neither sets it.
func Env(image []string, kv []*runtime.KeyValue) []string {
	var out []string
	idx := map[string]int{}
	put := func(k, entry string) {
		if i, ok := idx[k]; ok {
			out[i] = entry
			return
		}
		idx[k] = len(out)
		out = append(out, entry)
	}
	for _, e := range image {
		k, _, _ := strings.Cut(e, "=")
		put(k, e)
	}
	for _, e := range kv {
		put(e.Key, e.Key+"="+string(e.Value))
	}
	if _, ok := idx["PATH"]; !ok {
		out = append([]string{defaultPath}, out...)
	}
	return out
}

func workDir(c *runtime.ContainerConfig, img imagespec.ImageConfig) string {
	if c.WorkingDir != "" {
		return c.WorkingDir
	}
	if img.WorkingDir != "" {
		return img.WorkingDir
	}
	return "/"
}

func annotations(in Input) map[string]string {
	a := map[string]string{}
	for k, v := range in.Config.Annotations {
		a[k] = v
	}
	a[AnnotationContainerType] = ContainerTypeContainer
	a[AnnotationContainerName] = in.Config.Metadata.Name
	a[AnnotationSandboxID] = in.SandboxID
	a[AnnotationSandboxName] = in.Sandbox.GetMetadata().GetName()
	a[AnnotationSandboxNS] = in.Sandbox.GetMetadata().GetNamespace()
	a[AnnotationSandboxUID] = in.Sandbox.GetMetadata().GetUid()
	a[AnnotationImageName] = in.ImageName
	return a
}

func namespaces(in Input) []specs.LinuxNamespace {
	opt := in.Sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if o := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(); o != nil {
		opt = o
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	join := func(t specs.LinuxNamespaceType, mode runtime.NamespaceMode, path string) {
		switch {
		case mode == runtime.NamespaceMode_NODE:
			// Host namespace: no entry, the init stays in the daemon's.
		case path != "" && (t != specs.PIDNamespace || mode == runtime.NamespaceMode_POD || mode == runtime.NamespaceMode_TARGET):
			ns = append(ns, specs.LinuxNamespace{Type: t, Path: path})
		default:
			ns = append(ns, specs.LinuxNamespace{Type: t})
		}
	}
	join(specs.NetworkNamespace, opt.GetNetwork(), in.NetNS)
	join(specs.IPCNamespace, opt.GetIpc(), in.IPCNS)
	join(specs.UTSNamespace, opt.GetNetwork(), in.UTSNS) // the kubelet ties UTS to host network
	join(specs.PIDNamespace, opt.GetPid(), in.PIDNS)
	return ns
}

func hasUTS(ns []specs.LinuxNamespace) bool {
	for _, n := range ns {
		if n.Type == specs.UTSNamespace {
			return true
		}
	}
	return false
}

func cgroupsPath(in Input) string {
	parent := in.CgroupParent
	if p := in.Sandbox.GetLinux().GetCgroupParent(); parent == "" && p != "" {
		parent = p
	}
	if strings.HasSuffix(parent, ".slice") {
		return parent + ":cri-server:" + in.ID
	}
	if parent == "" {
		parent = "/cri-server"
	}
	return filepath.Join(parent, in.ID)
}

// sortedKeys keeps generated specs stable for tests and diffs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// wantNofile is containerd's default open-file limit for containers.
const wantNofile = 1048576

// defaultNofile is containerd's RLIMIT_NOFILE, clamped to the daemon's own
// hard limit: without CAP_SYS_RESOURCE (kind nodes, rootless, this CI) the
// kernel refuses to raise it, and a pod must not fail for a default.
func defaultNofile(log *slog.Logger) specs.POSIXRlimit {
	n := uint64(wantNofile)
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err == nil && cur.Max < n {
		n = cur.Max
		if log != nil {
			log.Debug("RLIMIT_NOFILE clamped to the daemon's hard limit", "wanted", wantNofile, "limit", n)
		}
	}
	return specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: n, Soft: n}
}
