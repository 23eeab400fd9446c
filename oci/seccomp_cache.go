package oci

import "path/filepath"

// seccompCacheDir holds compiled seccomp programs (seccomp.CompileCached).
// A name starting with a dot is never a container id (validID), so List
// and the containers' state never see it.
func (r *Runtime) seccompCacheDir() string { return filepath.Join(r.cfg.StateDir, ".seccomp") }
