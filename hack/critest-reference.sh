#!/usr/bin/env bash
# Runs hack/critest.sh against a reference runtime, Debian's containerd 1.6
# with runc, configured like cri-server's test config (mirrors to the local
# registry, a private bridge network), to check the harness itself: with
# faithful test images containerd passes every spec but its two idempotence
# failures ("StopContainer/StopPodSandbox should not return an error if not
# found"). Everything runs in a temp dir and is removed afterwards.
#
#   hack/critest-reference.sh [extra critest flags]
#
# Root only. Installs the containerd package if missing (not needed by
# cri-server itself, so not in install-tools.sh).
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
if ! command -v containerd >/dev/null; then
  log "installing Debian's containerd and runc"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc >/dev/null
fi

X=$(mktemp -d /tmp/critest-ref.XXXXXX)
id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
bridge=crref$id
pid=
cleanup() {
  set +e  # best effort: every step runs even if one finds nothing
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Shims outlive containerd by design; critest removed its pods, so any
  # shim of ours left now is killed.
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $X/" || true); do kill -9 "$p" 2>/dev/null || true; done
  grep -o " $X[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ip link delete "$bridge" 2>/dev/null || true
  rm -rf "$X"
}
trap cleanup EXIT

mkdir -p "$X/net.d"
# A /24 in 10.200-250.x.0 that no local address uses.
while :; do
  subnet=10.$((200 + RANDOM % 51)).$((RANDOM % 256)).0/24
  ip -o addr | grep -q " ${subnet%.0/24}\." || break
done
cat >"$X/net.d/10-$bridge.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$bridge", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$X/ipam", "ranges": [[{"subnet": "$subnet"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
reg=$REGISTRY_ADDR
cat >"$X/config.toml" <<TOML
version = 2
root = "$X/root"
state = "$X/state"
[grpc]
  address = "$X/containerd.sock"
[ttrpc]
  address = "$X/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$X/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
  # Root here lacks CAP_SYS_RESOURCE: a sandbox's -998 would make runc fail.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$X/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://$reg"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."gcr.io"]
    endpoint = ["http://$reg"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."k8s.gcr.io"]
    endpoint = ["http://$reg"]
TOML
setsid containerd --config "$X/config.toml" >"$X/containerd.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 100); do [[ -S $X/containerd.sock ]] && break; sleep 0.1; done
[[ -S $X/containerd.sock ]] || { log "containerd did not start:"; tail "$X/containerd.log" >&2; exit 2; }

rc=0
CRI_SOCKET=$X/containerd.sock CRITEST_REPORT_DIR=${CRITEST_REPORT_DIR:-$REPO_ROOT/_output/critest-reference} \
  hack/critest.sh "$@" || rc=$?
exit "$rc"
