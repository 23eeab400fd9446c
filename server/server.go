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

	mu      sync.Mutex
	podCIDR string // from UpdateRuntimeConfig
}

// New builds the services from the effective configuration.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{
		cfg: cfg,
		log: log,
		cni: cni.New(cfg.CNI.ConfDir, cfg.CNI.BinDirs),
	}
	s.cni.SetCacheDir(cni.DefaultCacheDir(cfg.Root))
	db, err := store.Open(filepath.Join(cfg.Root, "meta.db"))
	if err != nil {
		return nil, err
	}
	s.db = db
	s.pods, err = sandbox.New(ctx, sandbox.Options{StateDir: cfg.State, DB: db, CNI: s.cni, Log: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close releases what New acquired.
func (s *Server) Close() error { return s.db.Close() }
