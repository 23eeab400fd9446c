#!/usr/bin/env bash
# Pod sandbox benchmarks (root): RunPodSandbox latency in sequence and 50
# at once, stop+remove, beside the CNI plugins' own ADD time for the same
# conflist (the floor), and memory per pod. Each benchmark builds its own
# bridge, subnet and tmpfs state dir, and checks for leaks when done.
#   N=100 hack/bench-pods.sh          # pods in sequence (default 100)
#   CRIT_BENCH_NOMASQ=1 ...           # bridge without ipMasq
#   DEL=1 hack/bench-pods.sh          # only: where the plugins' DEL time goes
# In-process (Go benchmarks in server/): for the issue-5 table beside
# containerd and the plugins through a real socket, run hack/bench-cri.sh.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
N=${N:-100}

# del_breakdown: the plugins' own ADD/DEL (cribench -cni-floor, N/2 pods in
# sequence) on variants of hack/bench-cri.sh's conflist, first in the
# node's netns (with whatever CNI rules other runs left in its nat table),
# then in a private netns with an empty nat table and with a copy of the
# node's (so the two differ only by those rules); then, when strace is
# there, the processes one DEL runs. Nothing of the node's rules is touched.
del_breakdown() {
  local tmp bin n=$((N / 2)) ns=cribench-del-$$
  tmp=$(mktemp -d /tmp/bench-del.XXXXXX)
  trap 'ip netns del '"$ns"' 2>/dev/null; rm -rf '"$tmp" RETURN
  bin=$tmp/cribench
  go build -o "$bin" ./hack/cribench
  conflist() { # DIR NAME MASQ PORTMAP: DIR/net.d/10-NAME.conflist
    local sn pm=
    sn=10.$((200 + RANDOM % 51)).$((RANDOM % 256)).0/24
    mkdir -p "$1/net.d"
    [[ $4 == 1 ]] && pm=', {"type": "portmap", "capabilities": {"portMappings": true}}'
    cat >"$1/net.d/10-$2.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$2", "plugins": [
  {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": $3, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$1/ipam", "ranges": [[{"subnet": "$sn"}]], "routes": [{"dst": "0.0.0.0/0"}]}}$pm]}
JSON
  }
  variant() { # LABEL MASQ PORTMAP [NETNS]
    local id d
    id=crdel$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n'); d=$tmp/$id
    conflist "$d" "$id" "$2" "$3"
    local in=()
    [[ -n ${4:-} ]] && in=(ip netns exec "$4")
    "${in[@]}" "$bin" -cni-floor -cni-conf "$d/net.d" -cni-bin "$CNI_BIN_DIR" -pods "$n" -parallel 0 >"$d/out"
    "${in[@]}" ip link del "$id" 2>/dev/null
    printf '%-44s ADD %6.1f  DEL %6.1f ms (medians; load %s)\n' "$1" \
      "$(awk '$1 == "run_pod_median" { print $2 }' "$d/out")" "$(awk '$1 == "stop_pod_median" { print $2 }' "$d/out")" \
      "$(cut -d' ' -f1 /proc/loadavg)"
  }
  log "the plugins' DEL: $n pods in sequence per line"
  variant "bridge ipMasq + portmap (bench-cri's)" true 1
  variant "bridge ipMasq" true 0
  variant "bridge + portmap" false 1
  variant "bridge" false 0
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  variant "ipMasq + portmap, private netns, no rules" true 1 "$ns"
  iptables-save -t nat | ip netns exec "$ns" iptables-restore
  variant "  same + copy of the node's nat table ($(ip netns exec "$ns" iptables-save -t nat | grep -c '^-A') rules)" true 1 "$ns"
  command -v strace >/dev/null || return 0
  log "processes one DEL runs (strace; times inflated by it)"
  local d=$tmp/trace
  conflist "$d" "crdst$$" true 1
  strace -f -qq -e trace=execve -e signal=none -o "$d/trace" \
    "$bin" -cni-floor -cni-conf "$d/net.d" -cni-bin "$CNI_BIN_DIR" -pods 5 -parallel 0 >/dev/null
  ip link del "crdst$$" 2>/dev/null
  # 5 ADDs, then 5 DELs (from the 6th portmap process on: DEL runs the
  # chain backwards), then the namespaces go ("ip netns del").
  awk '/ execve\(/ { p = $0; sub(/^[0-9]+ +execve\("/, "", p); sub(/".*/, "", p); n = split(p, a, "/")
         args = $0; sub(/^[^[]*\[/, "", args); sub(/\].*/, "", args); gsub(/"/, "", args); m = split(args, v, ", ")
         l = a[n]; for (j = 2; j <= m && j <= 4; j++) if (length(v[j]) < 30) l = l " " v[j]
         line[++k] = l }
       END { for (i = 1; i <= k; i++) { if (line[i] ~ /^portmap/ && ++b == 6) first = i; if (first && line[i] ~ /^ip netns del/) { last = i; break } }
             for (i = first; i < last; i++) { c[line[i]]++; t++ }
             for (l in c) printf "  %4.1f per DEL  %s\n", c[l] / 5, l
             printf "  %4.1f processes per DEL in all\n", t / 5 }' "$d/trace" | sort -k4
}
if [[ ${DEL:-0} == 1 ]]; then
  del_breakdown
  exit 0
fi
run() { go test ./server -run '^$' -count=1 -bench "$1" -benchtime="$2" | grep -E '^Benchmark|FAIL|left|still'; }
log "sequential: $N pods, then the plugins' own ADD, $N times"
run 'BenchmarkRunPodSandbox$' "${N}x"
run 'BenchmarkBridgeAddDirect$' "${N}x"
log "50 at once (3 rounds)"
run 'BenchmarkRunPodSandbox50$' 3x
run 'BenchmarkBridgeAddDirect50$' 3x
log "memory per pod (shared-PID pods: the only kind with a process, the C init of sandbox/podinit)"
run 'BenchmarkPodMemory$' 1x
