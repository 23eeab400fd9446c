#!/usr/bin/env bash
# ExecSync benchmark (root): N calls of `true` in a running busybox
# container, one after the other, through the CRI socket. Reports median and
# p95 latency and CPU per call of the runtime's processes (from
# /proc/<pid>/stat before/after: the daemon's own time, and with the exec'd
# processes it reaped). Runs cri-server and then, when installed (or
# BENCH_CONTAINERD=0 to skip), Debian's containerd 1.6 + runc configured as
# in hack/critest-reference.sh; for containerd the shim's CPU counts too.
#   N=200 hack/bench-exec.sh
# Each runtime gets a temp dir, its own bridge and subnet; all removed after.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
N=${N:-200}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2
reg=$REGISTRY_ADDR

X=$(mktemp -d /tmp/bench-exec.XXXXXX)
id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
pids=()
socks=()
cleanup() {
  set +e
  for s in "${socks[@]}"; do
    crictl --runtime-endpoint "unix://$s" rmp -fa >/dev/null 2>&1
  done
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $X/" || true); do kill -9 "$p" 2>/dev/null; done
  grep -o " $X[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  ip link delete "crbx$id" 2>/dev/null; ip link delete "crbc$id" 2>/dev/null
  rm -rf "$X"
}
trap cleanup EXIT

hack/registry.sh start >/dev/null
hack/test-images.sh >/dev/null

# conflist DIR BRIDGE: a private bridge network on a free /24.
conflist() {
  local subnet
  while :; do
    subnet=10.$((200 + RANDOM % 51)).$((RANDOM % 256)).0/24
    ip -o addr | grep -q " ${subnet%.0/24}\." || break
  done
  mkdir -p "$1/net.d"
  cat >"$1/net.d/10-$2.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$2", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true,
   "ipam": {"type": "host-local", "dataDir": "$1/ipam", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
}

# bench NAME SOCK PIDS-FUNCTION: a pod and a sleeping container, then N
# ExecSyncs.
bench() {
  local name=$1 sock=$2 pidsof=$3 c="crictl --runtime-endpoint unix://$2 --image-endpoint unix://$2"
  for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.1; done
  $c pull "$IMAGE" >/dev/null
  cat >"$X/pod-$name.json" <<JSON
{"metadata": {"name": "bench-exec", "namespace": "bench", "uid": "bench-$id"}, "log_directory": "$X/logs-$name", "linux": {}}
JSON
  cat >"$X/ctr-$name.json" <<JSON
{"metadata": {"name": "sleeper"}, "image": {"image": "$IMAGE"}, "command": ["sleep", "3600"], "log_path": "sleeper.log", "linux": {}}
JSON
  local pod ctr
  pod=$($c runp "$X/pod-$name.json")
  ctr=$($c create "$pod" "$X/ctr-$name.json" "$X/pod-$name.json" 2>/dev/null)
  $c start "$ctr" >/dev/null
  go run ./hack/bench-exec -sock "$sock" -container "$ctr" -n "$N" -pids "$($pidsof)" -name "$name"
  $c rmp -f "$pod" >/dev/null
}

log "building cri-server"
hack/build.sh >/dev/null # as shipped: the embedded shim runs the exec's init
cp _output/bin/cri-server "$X/cri-server"
conflist "$X/crs" "crbx$id"
cat >"$X/crs/config.toml" <<TOML
root = "$X/crs/root"
state = "$X/crs/state"
listen = "$X/crs/cri.sock"
log_level = "info"
cgroup_driver = "cgroupfs"
[cni]
conf_dir = "$X/crs/net.d"
bin_dirs = ["$CNI_BIN_DIR"]
[registry]
insecure = ["$reg"]
[registry.mirrors."registry.k8s.io"]
endpoints = ["http://$reg"]
[metrics]
address = ""
TOML
setsid "$X/cri-server" serve --config "$X/crs/config.toml" >"$X/crs.log" 2>&1 </dev/null &
pids+=($!)
socks+=("$X/crs/cri.sock")
crs_pid=$!
crs_pids() { echo "$crs_pid"; }
log "cri-server: $N x ExecSync true"
bench cri-server "$X/crs/cri.sock" crs_pids

if [[ ${BENCH_CONTAINERD:-1} == 1 ]] && command -v containerd >/dev/null; then
  conflist "$X/ctd" "crbc$id"
  cat >"$X/ctd/config.toml" <<TOML
version = 2
root = "$X/ctd/root"
state = "$X/ctd/state"
[grpc]
  address = "$X/ctd/containerd.sock"
[ttrpc]
  address = "$X/ctd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$X/ctd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$X/ctd/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://$reg"]
TOML
  setsid containerd --config "$X/ctd/config.toml" >"$X/ctd.log" 2>&1 </dev/null &
  pids+=($!)
  socks+=("$X/ctd/containerd.sock")
  ctd_pid=$!
  # containerd and the pod's shim (which runs runc exec and reaps it).
  ctd_pids() { echo "$ctd_pid,$(pgrep -f "containerd-shim-runc-v2 .*-address $X/" | paste -sd,)"; }
  log "containerd $(containerd --version | awk '{print $3}') + runc: $N x ExecSync true"
  bench containerd "$X/ctd/containerd.sock" ctd_pids
else
  log "containerd not installed (or BENCH_CONTAINERD=0): cri-server only"
fi
