//go:build tools

// Package kubelet pins k8s.io/kubernetes so that hack/install-tools.sh can
// build the kubelet that test/e2e runs in standalone mode (static pods, no
// API server) against cri-server. k8s.io/kubernetes points its staging
// modules at ./staging; go.mod replaces each with its published version.
package kubelet

import _ "k8s.io/kubernetes/cmd/kubelet"
