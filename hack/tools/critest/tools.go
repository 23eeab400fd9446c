//go:build tools

// Package critest pins cri-tools so that hack/install-tools.sh can build the
// critest test binary at a fixed version.
package critest

import _ "sigs.k8s.io/cri-tools/cmd/critest"
