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
	"log/slog"
	"path/filepath"
	"sync"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-server/cri-server/cni"
	"github.com/cri-server/cri-server/config"
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

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig

	// Containers (container_*.go). pods, images and runtime are wired by
	// the lead to sandbox, imagesvc and oci.Runtime.
	db             *store.DB
	ctrs           *containerStore
	events         *eventHub
	pods           podLookup
	images         imageService
	runtime        containerRuntime
	monitorExe     string // the binary run as `monitor`; "" = /proc/self/exe
	oomScoreAdj    int
	capSysResource bool
}

// New builds the services from the effective configuration.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	db, err := store.Open(filepath.Join(cfg.Root, "meta.db"))
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg,
		log: log,
		cni: cni.New(cfg.CNI.ConfDir, cfg.CNI.BinDirs),
		db:  db,
	}
	// pods, images and runtime must be set here, before the containers are
	// reloaded: reconcile and orphan cleanup use them.
	if err := s.initContainers(db); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases what New acquired.
func (s *Server) Close() error { return s.db.Close() }
