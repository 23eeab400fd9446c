// Package server owns cri-server's two gRPC services, the CRI
// RuntimeService and ImageService. Each RPC lives in its own file and only
// validates, orchestrates and reports; the packages below do the work. The
// one instrumented boundary (instrument.go) logs every call and maps errors
// to gRPC codes.
//
// RPCs that no issue has implemented yet fall through to the generated
// Unimplemented* servers, which answer codes.Unimplemented naming the method.
package server

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"k8s.io/cri-streaming/pkg/streaming"

	"github.com/cri-server/cri-server/cni"
	"github.com/cri-server/cri-server/config"
	"github.com/cri-server/cri-server/imagesvc"
	"github.com/cri-server/cri-server/oci"
	"github.com/cri-server/cri-server/sandbox"
	"github.com/cri-server/cri-server/store"
)

// Server implements runtime.RuntimeServiceServer and
// runtime.ImageServiceServer.
type Server struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	cfg *config.Config
	log *slog.Logger
	cni *cni.Manager
	db  *store.DB

	pods *sandbox.Manager

	// Streaming: exec, attach and port-forward sessions.
	stream   streaming.Server
	streamer Streamer // nil until containers are wired
	podNetNS PodNetNS // nil until pods are wired

	metrics     *metrics
	metricsAddr string // bound address, for tests

	images *imagesvc.Service

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig

	// Containers (container_*.go). pods, images and runtime are wired by
	// the lead to sandbox, imagesvc and oci.Runtime.
	ctrs           *containerStore
	events         *eventHub
	podDeps        podLookup
	imageDeps      imageService
	runtime        containerRuntime
	monitorExe     string   // the binary run as `monitor`; "" = /proc/self/exe
	shimBin        []byte   // WithShim
	shim           *os.File // the sealed shim, when there is one (shim.go)
	oomScoreAdj    int
	capSysResource bool

	// stats keeps what the stats RPCs reuse between calls (stats_*.go).
	stats statsCollector
}

// New builds the services from the effective configuration.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	auths := map[string]imagesvc.Auth{}
	for host, a := range cfg.Registry.Auths {
		auths[host] = imagesvc.Auth{Username: a.Username, Password: a.Password, Auth: a.Auth, IdentityToken: a.IdentityToken}
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		cni:     cni.New(cfg.CNI.ConfDir, cfg.CNI.BinDirs),
		metrics: newMetrics(),
	}
	for _, o := range opts {
		o(s)
	}
	s.cni.SetCacheDir(cni.DefaultCacheDir(cfg.Root))
	s.cni.SetMaxParallelAdd(cfg.CNI.ParallelAdd())
	var err error
	s.images, err = imagesvc.New(imagesvc.Options{Root: filepath.Join(cfg.Root, "images"),
		State: filepath.Join(cfg.State, "images"), Registry: cfg.Registry, Auths: auths, Log: log})
	if err != nil {
		return nil, err
	}
	s.db, err = store.Open(filepath.Join(cfg.Root, "meta.db"))
	if err != nil {
		s.images.Close()
		return nil, err
	}
	s.pods, err = sandbox.New(ctx, sandbox.Options{StateDir: cfg.State, DB: s.db, CNI: s.cni, Log: log, PoolSize: max(cfg.CNI.NamespacePool, 0),
		NetJournalDir: filepath.Join(cfg.Root, "pods-net")})
	if err != nil {
		s.db.Close()
		s.images.Close()
		return nil, err
	}
	s.podNetNS = func(id string) (string, error) {
		p, err := s.pods.Get(id)
		if err != nil {
			return "", err
		}
		return p.NetNS, nil
	}
	s.podDeps = podAdapter{s}
	s.imageDeps = imageAdapter{s.images}
	shim, err := s.sealShim()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.monitorExe = shim // "" = /proc/self/exe
	rt, err := oci.New(oci.Config{StateDir: s.ociStateDir(), CgroupDriver: cfg.CgroupDriver, Logger: log, InitBinary: shim})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.runtime = rt
	s.streamer = containerStreamer{s}
	s.pods.SetContainerStopper(containerStopper{s})
	// pods, images and runtime are set before the containers are reloaded:
	// reconcile and orphan cleanup use them.
	if err := s.initContainers(s.db); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases what New acquired; it copes with a half-built server.
func (s *Server) Close() error {
	var errs []error
	if s.pods != nil {
		s.pods.Close() // its last store commits first
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	if s.images != nil {
		errs = append(errs, s.images.Close())
	}
	if s.shim != nil {
		errs = append(errs, s.shim.Close())
	}
	return errors.Join(errs...)
}
