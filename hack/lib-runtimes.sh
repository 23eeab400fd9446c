# Private runtimes for benchmarks and reference runs: cri-server and
# Debian's containerd 1.6 + runc, each in its own temp dir with its own
# bridge, subnet and IPAM store, both mirroring registry.k8s.io, gcr.io and
# k8s.gcr.io to the local registry ($REGISTRY_ADDR). Sourced after lib.sh.
#
#   runtimes_init                 temp dir $RT_DIR, cleaned by runtimes_cleanup (EXIT trap)
#   criserver_start BIN [NAME]    sets CRISERVER_SOCK, CRISERVER_PID ($CRISERVER_POOL: namespace_pool)
#   containerd_start              sets CONTAINERD_SOCK, CONTAINERD_PID (installs containerd if missing)
#   rt_network DIR NAME           a bridge conflist in DIR/net.d (also for the CNI floor)
#
# MASQ=node (default, as hack/run.sh's default network): one masquerade
# chain per network (pod_masq_add), the bridge's ipMasq off; MASQ=pod: the
# bridge plugin's per-pod ipMasq, as before.
#
# Each runtime's state dir is a tmpfs, as /run is on a node (containerd's
# /run/containerd, cri-server's /run/cri-server): /tmp here is a slow disk,
# which would measure the disk, not the runtimes.

RT_DIR=
RT_PIDS=()
RT_BRIDGES=()
RT_MASQ=() # "subnet chain" pairs for pod_masq_del
MASQ=${MASQ:-node}

runtimes_init() {
  RT_DIR=$(mktemp -d /tmp/cri-runtimes.XXXXXX)
  trap runtimes_cleanup EXIT
}

runtimes_cleanup() {
  set +e # best effort: every step runs even if one finds nothing
  local p
  for p in "${RT_PIDS[@]}"; do
    kill "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  # containerd's shims outlive it by design: ours are killed here.
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $RT_DIR/" || true); do kill -9 "$p" 2>/dev/null; done
  grep -o " $RT_DIR[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  for p in "${RT_BRIDGES[@]}"; do ip link delete "$p" 2>/dev/null; done
  for p in "${RT_MASQ[@]}"; do pod_masq_del $p; done
  rm -rf "$RT_DIR"
}

# rt_network DIR NAME: a bridge conflist for NAME in DIR/net.d, on a /24 in
# 10.200-250.x.0 that no local address uses.
rt_network() {
  local dir=$1 name=$2 subnet
  while :; do
    subnet=10.$((200 + RANDOM % 51)).$((RANDOM % 256)).0/24
    ip -o addr | grep -q " ${subnet%.0/24}\." || break
  done
  mkdir -p "$dir/net.d"
  local ipmasq=true
  if [[ $MASQ == node ]]; then
    ipmasq=false
    local chain
    chain=$(echo "MASQ-$name" | tr '[:lower:]' '[:upper:]' | cut -c1-28)
    pod_masq_add "$subnet" "$chain"
    RT_MASQ+=("$subnet $chain")
  fi
  cat >"$dir/net.d/10-$name.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$name", "plugins": [
  {"type": "bridge", "bridge": "$name", "isGateway": true, "ipMasq": $ipmasq, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$dir/ipam", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  RT_BRIDGES+=("$name")
}

rt_state_tmpfs() { # DIR: DIR/state on a tmpfs, unmounted by runtimes_cleanup
  mkdir -p "$1/state"
  mount -t tmpfs -o mode=0711 tmpfs "$1/state"
}

rt_wait_socket() { # SOCK PID LOG
  for _ in $(seq 300); do
    [[ -S $1 ]] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  log "runtime did not come up on $1; last log lines:"; tail -20 "$3" >&2
  return 1
}

criserver_start() { # BIN [NAME]: NAME (default cri-server) names its dir
  local bin=$1 dir=$RT_DIR/${2:-cri-server} id
  id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
  mkdir -p "$dir"
  rt_state_tmpfs "$dir"
  rt_network "$dir" "crib$id"
  cat >"$dir/config.toml" <<TOML
root = "$dir/root"
state = "$dir/state"
listen = "$dir/cri-server.sock"
log_level = "info"
[cni]
conf_dir = "$dir/net.d"
bin_dirs = ["$CNI_BIN_DIR"]
${CRISERVER_POOL:+namespace_pool = $CRISERVER_POOL}
${CRISERVER_CNI_EXTRA:-}
[metrics]
address = ""
[registry]
insecure = ["$REGISTRY_ADDR"]
[registry.mirrors."registry.k8s.io"]
endpoints = ["http://$REGISTRY_ADDR"]
[registry.mirrors."gcr.io"]
endpoints = ["http://$REGISTRY_ADDR"]
[registry.mirrors."k8s.gcr.io"]
endpoints = ["http://$REGISTRY_ADDR"]
TOML
  env ${CRISERVER_ENV:-} setsid "$bin" serve --config "$dir/config.toml" >"$dir/cri-server.log" 2>&1 </dev/null &
  CRISERVER_PID=$!
  RT_PIDS+=("$CRISERVER_PID")
  CRISERVER_SOCK=$dir/cri-server.sock
  rt_wait_socket "$CRISERVER_SOCK" "$CRISERVER_PID" "$dir/cri-server.log"
}

containerd_start() {
  local dir=$RT_DIR/containerd id
  if ! command -v containerd >/dev/null; then
    log "installing Debian's containerd and runc (for comparison only)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc >/dev/null
  fi
  id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
  mkdir -p "$dir"
  rt_state_tmpfs "$dir"
  rt_network "$dir" "crref$id"
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  # Root here lacks CAP_SYS_RESOURCE: a sandbox's -998 would make runc fail.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$dir/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://$REGISTRY_ADDR"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."gcr.io"]
    endpoint = ["http://$REGISTRY_ADDR"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."k8s.gcr.io"]
    endpoint = ["http://$REGISTRY_ADDR"]
TOML
  setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
  CONTAINERD_PID=$!
  RT_PIDS+=("$CONTAINERD_PID")
  CONTAINERD_SOCK=$dir/containerd.sock
  rt_wait_socket "$CONTAINERD_SOCK" "$CONTAINERD_PID" "$dir/containerd.log"
}
