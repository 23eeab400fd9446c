#!/usr/bin/env bash
# The README's run command: set up this machine and run cri-server in the
# foreground with working defaults. Safe to run again.
source "$(dirname "$0")/lib.sh"
"$REPO_ROOT/hack/install-tools.sh"
"$REPO_ROOT/hack/build.sh"
install -m 0755 "$REPO_ROOT/_output/bin/cri-server" /usr/local/bin/cri-server

# A default network, only when the node has none: never overwrite an
# operator's CNI config.
mkdir -p "$CNI_CONF_DIR"
if ! ls "$CNI_CONF_DIR"/*.conf "$CNI_CONF_DIR"/*.conflist "$CNI_CONF_DIR"/*.json >/dev/null 2>&1; then
  log "writing the default bridge network to $CNI_CONF_DIR/10-cri-server-bridge.conflist"
  cat > "$CNI_CONF_DIR/10-cri-server-bridge.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "cri-server",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "10.88.0.0/16" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
fi
# Pods reach beyond the node through one masquerade rule for the default
# subnet (see pod_masq_add: the bridge plugin's per-pod ipMasq chains made
# up most of every pod's teardown). Only for our default conflist with
# ipMasq off: an operator's own, or an older default with ipMasq on, keeps
# its own masquerading.
if grep -q '"ipMasq": false' "$CNI_CONF_DIR/10-cri-server-bridge.conflist" 2>/dev/null; then
  pod_masq_add 10.88.0.0/16 CRI-SERVER-MASQ
fi
mkdir -p /etc/cri-server
log "starting cri-server (config: /etc/cri-server/config.toml if present); crictl info works from another shell"
exec /usr/local/bin/cri-server serve "$@"
