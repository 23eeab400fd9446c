# Shared settings for hack/ scripts. Sourced, not run.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_BIN=${TOOLS_BIN:-$REPO_ROOT/_output/tools}
CRICTL_VERSION=v1.37.0
CRITOOLS_VERSION=v1.37.0
KUBELET_VERSION=v1.37.2
CNI_PLUGINS_VERSION=v1.10.0
GGCR_VERSION=v0.22.1
CNI_BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
REGISTRY_ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
export PATH=/usr/local/go/bin:$TOOLS_BIN:$PATH
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
