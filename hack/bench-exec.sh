#!/usr/bin/env bash
# ExecSync benchmark (root): N calls of `true` in a running busybox
# container, one after the other, through the CRI socket. Reports median and
# p95 latency and CPU per call of the runtime's processes (from
# /proc/<pid>/stat before/after: the daemon's own time, and with the exec'd
# processes it reaped). Runs cri-server and then, when installed (or
# BENCH_CONTAINERD=0 to skip), Debian's containerd 1.6 + runc; for
# containerd the shim's CPU counts too.
#   N=200 hack/bench-exec.sh
# Each runtime gets a temp dir, its own bridge and subnet (hack/lib-runtimes.sh);
# all removed after.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-runtimes.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
N=${N:-200}
IMAGE=registry.k8s.io/e2e-test-images/busybox:1.29-2

started=0
if ! curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; then
  hack/registry.sh start >/dev/null
  started=1
fi
runtimes_init
socks=()
cleanup() {
  for s in "${socks[@]}"; do
    crictl --runtime-endpoint "unix://$s" rmp -fa >/dev/null 2>&1
  done
  runtimes_cleanup
  if ((started)); then hack/registry.sh stop; fi
}
trap cleanup EXIT
hack/test-images.sh >/dev/null

# bench NAME SOCK PIDS-FUNCTION: a pod and a sleeping container, then N
# ExecSyncs.
bench() {
  local name=$1 sock=$2 pidsof=$3 c="crictl --runtime-endpoint unix://$2 --image-endpoint unix://$2"
  socks+=("$sock")
  $c pull "$IMAGE" >/dev/null
  cat >"$RT_DIR/pod-$name.json" <<JSON
{"metadata": {"name": "bench-exec", "namespace": "bench", "uid": "bench-$name"}, "log_directory": "$RT_DIR/logs-$name", "linux": {}}
JSON
  cat >"$RT_DIR/ctr-$name.json" <<JSON
{"metadata": {"name": "sleeper"}, "image": {"image": "$IMAGE"}, "command": ["sleep", "3600"], "log_path": "sleeper.log", "linux": {}}
JSON
  local pod ctr
  pod=$($c runp "$RT_DIR/pod-$name.json")
  ctr=$($c create "$pod" "$RT_DIR/ctr-$name.json" "$RT_DIR/pod-$name.json" 2>/dev/null)
  $c start "$ctr" >/dev/null
  go run ./hack/bench-exec -sock "$sock" -container "$ctr" -n "$N" -pids "$($pidsof)" -name "$name"
  $c rmp -f "$pod" >/dev/null
}

log "building cri-server"
hack/build.sh >/dev/null
criserver_start "$REPO_ROOT/_output/bin/cri-server"
crs_pids() { echo "$CRISERVER_PID"; }
log "cri-server: $N x ExecSync true"
bench cri-server "$CRISERVER_SOCK" crs_pids

if [[ ${BENCH_CONTAINERD:-1} == 1 ]]; then
  containerd_start
  # containerd and the pod's shim (which runs runc exec and reaps it).
  ctd_pids() { echo "$CONTAINERD_PID,$(pgrep -f "containerd-shim-runc-v2 .*-address $RT_DIR/" | paste -sd,)"; }
  log "containerd $(containerd --version | awk '{print $3}') + runc: $N x ExecSync true"
  bench containerd "$CONTAINERD_SOCK" ctd_pids
fi
