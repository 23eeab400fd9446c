package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/errdefs"
	"github.com/cri-server/cri-server/monitor"
	"github.com/cri-server/cri-server/oci/spec"
	"github.com/cri-server/cri-server/store"
)

// containerName is the registrar key: unique per pod, container name and
// attempt, the way the kubelet expects a retried create to collide.
func containerName(c *runtime.ContainerMetadata, p *runtime.PodSandboxMetadata) string {
	return strings.Join([]string{c.GetName(), p.GetName(), p.GetNamespace(), p.GetUid(), strconv.FormatUint(uint64(c.GetAttempt()), 10)}, "_")
}

// CreateContainer resolves the image, prepares the rootfs, builds the spec
// and has a new monitor create the container. Every step is undone if a
// later one fails.
func (s *Server) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (_ *runtime.CreateContainerResponse, retErr error) {
	cfg := r.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, errdefs.InvalidArgument("config.metadata.name is required")
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, errdefs.InvalidArgument("config.image.image is required")
	}
	if s.podDeps == nil || s.imageDeps == nil {
		return nil, errdefs.FailedPrecondition("create container: pods or images are not wired")
	}
	pod, err := s.podDeps.Pod(ctx, r.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("find pod: %w", err)
	}
	if !pod.Ready {
		return nil, errdefs.FailedPrecondition("pod %s is not ready", pod.ID)
	}
	sbCfg := r.GetSandboxConfig()
	if sbCfg == nil {
		sbCfg = pod.Config
	}
	id := store.NewID()
	name := containerName(cfg.Metadata, sbCfg.GetMetadata())
	if err := s.ctrs.names.Reserve(name, id); err != nil {
		return nil, err
	}
	log := s.log.With("container", id, "pod", pod.ID, "name", cfg.Metadata.Name)
	t := newCreateTimes()
	// Undo runs on a fresh context: the kubelet's may be what expired.
	var undo []func(context.Context)
	defer func() {
		if retErr == nil {
			return
		}
		uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](uctx)
		}
		s.ctrs.names.Release(name)
		log.Warn("create container failed, undone", "error", retErr)
	}()

	img, err := s.imageDeps.Resolve(ctx, cfg.Image.Image)
	if err != nil {
		return nil, fmt.Errorf("resolve image %s: %w", cfg.Image.Image, err)
	}
	t.mark(&t.resolve)
	// The bundle dir before anything else is made: it is the create's
	// journal. A daemon killed at any later step leaves it, and the start-up
	// sweep (cleanOrphanBundles) undoes the rootfs and executor state of an
	// id with no record.
	bundle := filepath.Join(s.cfg.State, "containers", id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return nil, fmt.Errorf("create bundle dir: %w", err)
	}
	undo = append(undo, func(context.Context) { os.RemoveAll(bundle) })
	rootfs, err := s.imageDeps.Mount(ctx, img.ID, id)
	if err != nil {
		return nil, fmt.Errorf("mount rootfs: %w", err)
	}
	undo = append(undo, func(c context.Context) { s.imageDeps.Remove(c, id) })
	if err := idmapRootfs(rootfs, pod.UserNS, sbCfg); err != nil {
		return nil, err
	}
	t.mark(&t.rootfs)
	specCfg, statusMounts, err := s.prepareMounts(ctx, id, cfg)
	if err != nil {
		return nil, err
	}

	pidns, err := s.pidNamespace(cfg, pod)
	if err != nil {
		return nil, err
	}
	in := spec.Input{
		ID: id, Config: specCfg, Sandbox: sbCfg, SandboxID: pod.ID, Image: img.Config, ImageName: cfg.Image.Image,
		Rootfs: rootfs, NetNS: pod.NetNS, IPCNS: pod.IPCNS, UTSNS: pod.UTSNS, PIDNS: pidns, UserNS: pod.UserNS,
		HostnamePath: pod.HostnamePath, HostsPath: pod.HostsPath, ResolvPath: pod.ResolvPath, ShmPath: pod.ShmPath,
		CgroupParent: pod.CgroupParent, DaemonOOMScoreAdj: s.oomScoreAdj, CapSysResource: s.capSysResource, Log: log,
	}
	if err := s.securityInput(&in); err != nil {
		return nil, err
	}
	sp, err := spec.Generate(in)
	if err != nil {
		return nil, err
	}
	stopSig, err := spec.StopSignal(stopSignalOf(cfg), img.Config.StopSignal)
	if err != nil {
		return nil, err
	}

	logPath, err := containerLogPath(pod.LogDirectory, cfg.LogPath)
	if err != nil {
		return nil, err
	}
	t.mark(&t.spec)
	mcfg := monitor.Config{ID: id, LogPath: logPath, OCIStateDir: s.ociStateDir(),
		Stdin: cfg.Stdin, StdinOnce: cfg.StdinOnce, Terminal: cfg.Tty}
	pid, err := monitor.Spawn(ctx, s.monitorExe, bundle, mcfg, sp)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	t.mark(&t.monitor)
	undo = append(undo, func(c context.Context) {
		monitor.Call(c, bundle, monitor.Request{Op: monitor.OpKill, Signal: 9, All: true})
		monitor.Call(c, bundle, monitor.Request{Op: monitor.OpWait})
		if s.runtime != nil {
			s.runtime.Delete(c, id, true)
		}
	})

	rec := &containerRecord{
		ID: id, Name: name, PodID: pod.ID, Metadata: cfg.Metadata, Labels: cfg.Labels, Annotations: cfg.Annotations,
		Image: cfg.Image, ImageID: img.ID, ImageRef: img.Ref, LogPath: logPath, Mounts: statusMounts,
		User: sp.Process.User, StopSignal: int(stopSig), Bundle: bundle,
		Status: containerStatus{State: runtime.ContainerState_CONTAINER_CREATED, Pid: pid, CreatedAt: time.Now(),
			Resources: cfg.GetLinux().GetResources()},
	}
	if err := s.ctrs.add(rec); err != nil {
		return nil, err
	}
	t.mark(&t.store)
	go s.watch(id, bundle)
	log.Info("container created", append([]any{"image", img.ID, "pid", pid}, t.attrs()...)...)
	s.emit(rec, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// createTimes splits a CreateContainer's time for its log line (read by
// hack/bench-cri.sh): image resolution, the rootfs (overlay mount and its
// record), mounts and spec, the monitor's create (its start-up and the
// executor's create), the store commit.
type createTimes struct {
	t0, last                              time.Time
	resolve, rootfs, spec, monitor, store time.Duration
}

func newCreateTimes() *createTimes {
	now := time.Now()
	return &createTimes{t0: now, last: now}
}

// mark adds the time since the previous mark to *d.
func (t *createTimes) mark(d *time.Duration) {
	now := time.Now()
	*d += now.Sub(t.last)
	t.last = now
}

func (t *createTimes) attrs() []any {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return []any{"resolve_ms", ms(t.resolve), "rootfs_ms", ms(t.rootfs), "spec_ms", ms(t.spec),
		"monitor_ms", ms(t.monitor), "store_ms", ms(t.store), "total_ms", ms(time.Since(t.t0))}
}

// stopSignalOf reads the kubelet's lifecycle stop signal (CRI v1.33+).
func stopSignalOf(c *runtime.ContainerConfig) string {
	sig := c.GetStopSignal()
	if sig == runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		return ""
	}
	return strings.TrimPrefix(sig.String(), "SIGNAL_")
}

// containerLogPath joins the pod's log directory and the kubelet's relative
// path, refusing a path that climbs out of the directory.
func containerLogPath(dir, rel string) (string, error) {
	if dir == "" || rel == "" {
		return "", nil
	}
	p := filepath.Join(dir, rel)
	if !strings.HasPrefix(p, filepath.Clean(dir)+"/") {
		return "", errdefs.InvalidArgument("log_path %q leaves the pod's log directory", rel)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("create log dir: %w", err)
	}
	return p, nil
}

// watch waits for the monitor to report the exit and records it. It runs
// for every container not yet exited, also after a daemon restart.
func (s *Server) watch(id, bundle string) {
	rep, err := monitor.Call(context.Background(), bundle, monitor.Request{Op: monitor.OpWait})
	var ex *monitor.Exit
	if err == nil && rep.Exit != nil {
		ex = rep.Exit
	} else if e, rerr := monitor.ReadExit(bundle); rerr == nil {
		ex = e
	}
	s.recordExit(id, ex, err)
}

// recordExit moves a container to EXITED. ex nil means the monitor is gone
// without a record: the container is reported as exited with an unknown
// code rather than running.
func (s *Server) recordExit(id string, ex *monitor.Exit, cause error) {
	if ex == nil {
		s.killLost(id)
	}
	rec, err := s.ctrs.update(id, func(st *containerStatus) error {
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			return errAlready
		}
		st.State = runtime.ContainerState_CONTAINER_EXITED
		if ex == nil {
			st.FinishedAt, st.ExitCode, st.Reason = time.Now(), exitCodeUnknown, reasonError
			st.Message = "container monitor lost"
			if cause != nil {
				st.Message += ": " + cause.Error()
			}
			return nil
		}
		st.FinishedAt, st.ExitCode = ex.ExitedAt, int32(ex.Code)
		if st.Reason != reasonCannotRun {
			st.Reason = exitReason(st.ExitCode, ex.OOMKilled)
		}
		if ex.Message != "" {
			st.Message = ex.Message
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errAlready) && !errors.Is(err, errdefs.ErrNotFound) {
			s.log.Error("record container exit", "container", id, "error", err)
		}
		return
	}
	s.log.Info("container exited", "container", id, "code", rec.Status.ExitCode, "reason", rec.Status.Reason)
	s.emit(rec, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// errAlready aborts an update that has nothing to do.
var errAlready = errors.New("already in that state")
