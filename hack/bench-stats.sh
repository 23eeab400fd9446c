#!/usr/bin/env bash
# ListContainerStats latency with N running containers (default 100), for
# cri-server and, beside it in the same run, Debian's containerd 1.6 with
# runc configured as in hack/critest-reference.sh (skip it with
# NO_CONTAINERD=1). hack/stats-bench does the work over the CRI: one
# host-network pod, N `sleep` containers, R measured calls (default 200).
# Each runtime runs in a temp dir that is removed afterwards. Root only.
#
#   REGISTRY_ADDR=127.0.0.1:5102 N=100 R=200 hack/bench-stats.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
N=${N:-100}
R=${R:-200}
hack/install-tools.sh >/dev/null
hack/build.sh
go build -o _output/bin/stats-bench ./hack/stats-bench
started=0
if ! hack/registry.sh status >/dev/null 2>&1; then
  hack/registry.sh start
  started=1
fi
hack/test-images.sh >/dev/null

X=$(mktemp -d /tmp/bench-stats.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $X/" || true); do kill -9 "$p" 2>/dev/null; done
  grep -o " $X[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$X"
  if ((started)); then hack/registry.sh stop; fi
}
trap cleanup EXIT
reg=$REGISTRY_ADDR
wait_sock() {
  for _ in $(seq 100); do [[ -S $1 ]] && return 0; sleep 0.1; done
  log "$2 did not start:"; tail "$3" >&2; exit 2
}

mkdir -p "$X/crs/net.d"
cat >"$X/crs/config.toml" <<TOML
root = "$X/crs/root"
state = "$X/crs/state"
listen = "$X/crs/cri.sock"
cgroup_driver = "cgroupfs"
[metrics]
address = "127.0.0.1:0"
[cni]
conf_dir = "$X/crs/net.d"
bin_dirs = ["$CNI_BIN_DIR"]
[registry]
insecure = ["$reg"]
[registry.mirrors."registry.k8s.io"]
endpoints = ["http://$reg"]
TOML
setsid _output/bin/cri-server serve --config "$X/crs/config.toml" >"$X/crs/server.log" 2>&1 </dev/null &
pids+=($!)
wait_sock "$X/crs/cri.sock" cri-server "$X/crs/server.log"
_output/bin/stats-bench -name cri-server -endpoint "unix://$X/crs/cri.sock" -n "$N" -r "$R"

if [[ -z ${NO_CONTAINERD:-} ]]; then
  if ! command -v containerd >/dev/null; then
    log "installing Debian's containerd and runc"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc >/dev/null
  fi
  mkdir -p "$X/ctd/net.d"
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
  setsid containerd --config "$X/ctd/config.toml" >"$X/ctd/containerd.log" 2>&1 </dev/null &
  pids+=($!)
  wait_sock "$X/ctd/containerd.sock" containerd "$X/ctd/containerd.log"
  _output/bin/stats-bench -name containerd -endpoint "unix://$X/ctd/containerd.sock" -n "$N" -r "$R"
fi
