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

# Pod masquerade, node-wide: one nat chain per pod subnet, hooked into
# POSTROUTING once, instead of the bridge plugin's ipMasq, which makes and
# deletes a chain per pod (6 iptables and 3 nft runs in every DEL, ~70-90
# ms of a pod's ~115 ms DEL on this machine). Idempotent.
#   pod_masq_add SUBNET CHAIN      pod_masq_del SUBNET CHAIN
pod_masq_add() {
  local subnet=$1 chain=$2
  iptables -w -t nat -N "$chain" 2>/dev/null || true
  iptables -w -t nat -C "$chain" -d "$subnet" -j RETURN 2>/dev/null ||
    iptables -w -t nat -A "$chain" -d "$subnet" -j RETURN
  iptables -w -t nat -C "$chain" -d 224.0.0.0/4 -j RETURN 2>/dev/null ||
    iptables -w -t nat -A "$chain" -d 224.0.0.0/4 -j RETURN
  iptables -w -t nat -C "$chain" -j MASQUERADE 2>/dev/null ||
    iptables -w -t nat -A "$chain" -j MASQUERADE
  iptables -w -t nat -C POSTROUTING -s "$subnet" -j "$chain" 2>/dev/null ||
    iptables -w -t nat -A POSTROUTING -s "$subnet" -j "$chain"
}
pod_masq_del() {
  local subnet=$1 chain=$2
  iptables -w -t nat -D POSTROUTING -s "$subnet" -j "$chain" 2>/dev/null
  iptables -w -t nat -F "$chain" 2>/dev/null
  iptables -w -t nat -X "$chain" 2>/dev/null
  return 0
}
