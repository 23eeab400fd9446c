#!/usr/bin/env bash
# Pods and containers through the CRI socket, cri-server beside containerd
# 1.6 + runc in the same run, by the same client (hack/cribench): pod and
# container start latency, stop+remove, memory added per container and per
# pod (RSS/PSS of every runtime process, not the workloads), the daemons'
# RSS, and list latency at that size. Root only.
#
#   PODS=100 CONTAINERS=2 hack/bench-cri.sh
#   RUNTIMES="cri-server"    to skip containerd
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-runtimes.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
PODS=${PODS:-10}
CONTAINERS=${CONTAINERS:-2}
RUNTIMES=${RUNTIMES:-cri-server containerd}

hack/install-tools.sh
started=0
if ! curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; then
  hack/registry.sh start
  started=1
fi
runtimes_init
trap 'runtimes_cleanup; ((started)) && hack/registry.sh stop' EXIT
hack/test-images.sh >/dev/null
hack/build.sh >/dev/null
go build -o "$RT_DIR/cribench" ./hack/cribench

declare -A res
for rt in $RUNTIMES; do
  case $rt in
    cri-server) criserver_start "$REPO_ROOT/_output/bin/cri-server"; sock=$CRISERVER_SOCK; pid=$CRISERVER_PID ;;
    containerd) containerd_start; sock=$CONTAINERD_SOCK; pid=$CONTAINERD_PID ;;
    *) log "unknown runtime $rt"; exit 2 ;;
  esac
  log "$rt: $PODS pods x $CONTAINERS containers"
  "$RT_DIR/cribench" -socket "$sock" -runtime-pid "$pid" -owner-match "$RT_DIR/" -pods "$PODS" -containers "$CONTAINERS" >"$RT_DIR/$rt.out"
  while read -r k v _; do res[$rt.$k]=$v; done <"$RT_DIR/$rt.out"
  units=$(awk '{print $1, $3}' "$RT_DIR/$rt.out")
done

printf '%-26s' metric; for rt in $RUNTIMES; do printf ' %12s' "$rt"; done; echo
while read -r k u; do
  printf '%-26s' "$k${u:+ ($u)}"
  for rt in $RUNTIMES; do printf ' %12s' "${res[$rt.$k]:--}"; done
  echo
done <<<"$units"
