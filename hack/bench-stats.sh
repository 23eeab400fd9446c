#!/usr/bin/env bash
# ListContainerStats latency with N running containers (default 100), for
# cri-server and, beside it in the same run, Debian's containerd 1.6 with
# runc (skip it with NO_CONTAINERD=1). hack/stats-bench does the work over
# the CRI: one host-network pod, N `sleep` containers, R measured calls
# (default 200). Each runtime runs in a temp dir (hack/lib-runtimes.sh) that
# is removed afterwards. Root only.
#
#   REGISTRY_ADDR=127.0.0.1:5102 N=100 R=200 hack/bench-stats.sh
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-runtimes.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
N=${N:-100}
R=${R:-200}
hack/install-tools.sh >/dev/null
hack/build.sh
started=0
if ! curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; then
  hack/registry.sh start
  started=1
fi
runtimes_init
trap 'runtimes_cleanup; ((started)) && hack/registry.sh stop' EXIT
hack/test-images.sh >/dev/null
go build -o "$RT_DIR/stats-bench" ./hack/stats-bench

criserver_start "$REPO_ROOT/_output/bin/cri-server"
"$RT_DIR/stats-bench" -name cri-server -endpoint "unix://$CRISERVER_SOCK" -n "$N" -r "$R"
if [[ -z ${NO_CONTAINERD:-} ]]; then
  containerd_start
  "$RT_DIR/stats-bench" -name containerd -endpoint "unix://$CONTAINERD_SOCK" -n "$N" -r "$R"
fi
