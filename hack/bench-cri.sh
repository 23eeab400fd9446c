#!/usr/bin/env bash
# Issue 5's table in one command: pods through the CRI socket, cri-server
# beside containerd 1.6 + runc in the same run, by the same client
# (hack/cribench), and beside them the CNI plugins' own ADD/DEL on an
# equivalent conflist (the floor no runtime can beat). Root only.
#
#   RunPodSandbox:      PODS in sequence and PARALLEL at once (median, p95, total)
#   stop+remove:        the same pods (Stop and Remove also apart)
#   memory per pod:     at MEM_STEPS pods: RSS and PSS of every process the
#                       runtime started for them, and the daemon's growth
#   containers:         CTR_PODS pods x CONTAINERS: create+start, stop+remove
#                       with containers running, memory per container, lists
#
#   REGISTRY_ADDR=127.0.0.1:5106 hack/bench-cri.sh
#   PODS=100 PARALLEL=50 MEM_STEPS=1,10,50 CTR_PODS=10 CONTAINERS=2 (defaults)
#   RUNTIMES="cri-server"    to skip containerd; FLOOR=0 to skip the plugins
#   POOL=N                   cri-server's namespace_pool (default: its own)
#   TURNS=N                  a floor column "cni-turns": the plugins alone at
#                            most N ADDs at once (default 2 per CPU, as
#                            cri-server's default max_parallel_add); 0: skip
#   ROUNDS=N                 every runtime and the floor N times in turn (a
#                            new daemon each round); each figure is the
#                            median of the rounds' (all kept in rounds.txt)
#   BASE_BIN=/path/cri-server  adds a column "cri-base" for that binary (an
#                            older build), run in the same session: before
#                            and after figures on equal terms on a busy machine
#   BASE_CNI='namespace_pool = 0'  extra [cni] lines for cri-base's config (with
#                            BASE_BIN=_output/bin/cri-server: one setting's
#                            before and after)
#   BASE_ENV='GOMAXPROCS=8'  environment for the cri-base daemon, likewise
# Each runtime gets its own bridge, subnet, IPAM dir and tmpfs state dir
# (hack/lib-runtimes.sh); everything is removed at exit but the daemons'
# logs and raw figures, kept in _output/bench-cri/.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-runtimes.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
PODS=${PODS:-100}
PARALLEL=${PARALLEL:-50}
MEM_STEPS=${MEM_STEPS-1,10,50} # empty: skip
CTR_PODS=${CTR_PODS:-10}
CONTAINERS=${CONTAINERS:-2}
RUNTIMES=${RUNTIMES:-cri-server containerd}
BASE_BIN=${BASE_BIN:-}
[[ -z $BASE_BIN ]] || RUNTIMES="cri-base $RUNTIMES"
FLOOR=${FLOOR:-1}
ROUNDS=${ROUNDS:-1}
TURNS=${TURNS:-$((2 * $(nproc)))}

hack/install-tools.sh
started=0
if ! curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; then
  hack/registry.sh start
  started=1
fi
runtimes_init
OUT=$REPO_ROOT/_output/bench-cri
mkdir -p "$OUT"
# The daemons' logs and cribench's raw figures outlive the temp dir.
keep_logs() { # each daemon's log named by its runtime: cri-base logs as cri-server does
  local f
  for f in "$RT_DIR"/*/*.log; do [[ -f $f ]] && cp "$f" "$OUT/$(basename "$(dirname "$f")").log"; done
  cp "$RT_DIR"/*.out "$OUT/" 2>/dev/null || true
}
trap 'keep_logs; runtimes_cleanup; ((started)) && hack/registry.sh stop' EXIT
hack/test-images.sh >/dev/null
hack/build.sh >/dev/null
go build -o "$RT_DIR/cribench" ./hack/cribench

declare -A res
cols=()
keys=()
collect() { # NAME FILE: appends this round's figures to res[NAME.key]
  local k v u
  [[ " ${cols[*]} " == *" $1 "* ]] || cols+=("$1")
  while read -r k v u; do
    res[$1.$k]+="${res[$1.$k]:+ }$v"
    [[ -n ${unit[$k]+x} ]] || { unit[$k]=$u; keys+=("$k"); }
  done <"$2"
}
median_of() { # VALUES...: their median (the lower middle one)
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
declare -A unit

# daemon_split LOG: from cri-server's own log ("pod ready" and "pod stopped"
# lines), the plugins' ADD and DEL as run inside the daemon and the
# daemon's own time around them, for the pods of the sequence phase
# (cribench names them cribench-PID-2 .. -PODS+1; 1 is the warm-up) and of
# the at-once phase: the plugins' time varies with the machine's load, so
# this is the fairest "above the plugins" figure.
daemon_split() {
  awk -v seq_lo=2 -v seq_hi=$((PODS + 1)) -v par_hi=$((PODS + PARALLEL + 1)) '
    function val(k,   i) { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return "" }
    function phase(n,   s) { s = n; sub(/_.*/, "", s); sub(/.*-/, "", s); s += 0
      return (s >= seq_lo && s <= seq_hi) ? "" : (s > seq_hi && s <= par_hi) ? "par_" : "x" }
    function med(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j+1] = a[j]; a[j+1] = t }
      return n ? a[int((n + 1) / 2)] : 0 }
    /msg="pod ready"/ { p = phase(val("name")); ph[val("pod")] = p; if (p == "x") next
      add[p, ++na[p]] = val("add_ms") + 0; self[p, na[p]] = val("total_ms") - val("add_ms"); wt[p, na[p]] = val("add_wait_ms") + 0 }
    /msg="pod stopped"/ { p = ph[val("pod")]; if (p == "" && !(val("pod") in ph)) next; if (p == "x") next
      del[p, ++nd[p]] = val("network_ms") + 0 }
    END { split(", par_", ps, ","); for (k = 1; k <= 2; k++) { p = ps[k]; sub(/^ /, "", p)
        delete a; for (i = 1; i <= na[p]; i++) a[i] = add[p, i]; printf "%srun_pod_plugins_add_median %.1f ms\n", p, med(a, na[p])
        delete a; for (i = 1; i <= na[p]; i++) a[i] = wt[p, i]; printf "%srun_pod_add_wait_median %.1f ms\n", p, med(a, na[p])
        delete a; for (i = 1; i <= na[p]; i++) a[i] = self[p, i]; printf "%srun_pod_daemon_own_median %.1f ms\n", p, med(a, na[p])
        delete a; for (i = 1; i <= nd[p]; i++) a[i] = del[p, i]; printf "%sstop_pod_plugins_del_median %.1f ms\n", p, med(a, nd[p]) } }
  ' "$1"
}

declare -A rt_sock rt_pid
for round in $(seq 1 "$ROUNDS"); do
((ROUNDS == 1)) || log "round $round of $ROUNDS"
for rt in $RUNTIMES; do
  if [[ -z ${rt_sock[$rt]:-} ]]; then # each daemon starts once and serves every round
    case $rt in
      cri-server) CRISERVER_POOL=${POOL:-} criserver_start "$REPO_ROOT/_output/bin/cri-server"; sock=$CRISERVER_SOCK; pid=$CRISERVER_PID ;;
      cri-base) CRISERVER_POOL= CRISERVER_CNI_EXTRA=${BASE_CNI:-} CRISERVER_ENV=${BASE_ENV:-} criserver_start "$BASE_BIN" cri-base; sock=$CRISERVER_SOCK; pid=$CRISERVER_PID ;;
      containerd) containerd_start; sock=$CONTAINERD_SOCK; pid=$CONTAINERD_PID ;;
      *) log "unknown runtime $rt"; exit 2 ;;
    esac
    rt_sock[$rt]=$sock; rt_pid[$rt]=$pid
  fi
  log "$rt: $PODS pods in sequence, $PARALLEL at once, memory at $MEM_STEPS pods, $CTR_PODS pods x $CONTAINERS containers"
  dlog=$RT_DIR/$rt/cri-server.log
  from=1; [[ -f $dlog ]] && from=$(($(wc -l <"$dlog") + 1))
  "$RT_DIR/cribench" -socket "${rt_sock[$rt]}" -runtime-pid "${rt_pid[$rt]}" -owner-match "$RT_DIR/" \
    -pods "$PODS" -parallel "$PARALLEL" -mem-steps "$MEM_STEPS" \
    -ctr-pods "$CTR_PODS" -containers "$CONTAINERS" >"$RT_DIR/$rt.out"
  # Only this round's lines of the daemon's log.
  [[ $rt == cri-* ]] && daemon_split <(tail -n +"$from" "$dlog") >>"$RT_DIR/$rt.out"
  collect "$rt" "$RT_DIR/$rt.out"
done
if ((FLOOR)); then
  log "CNI plugins alone (bridge+portmap, same conflist): $PODS in sequence, $PARALLEL at once"
  mkdir -p "$RT_DIR/floor"
  rt_network "$RT_DIR/floor" "crfl$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  "$RT_DIR/cribench" -cni-floor -cni-conf "$RT_DIR/floor/net.d" -cni-bin "$CNI_BIN_DIR" \
    -pods "$PODS" -parallel "$PARALLEL" >"$RT_DIR/floor.out"
  collect cni-plugins "$RT_DIR/floor.out"
  rm -rf "$RT_DIR/floor"
  if ((TURNS > 0)); then
    # The same plugins, at most TURNS ADDs at once in arrival order, as
    # cri-server runs them by default ([cni] max_parallel_add).
    log "CNI plugins alone, at most $TURNS ADDs at once: $PARALLEL at once"
    mkdir -p "$RT_DIR/floor"
    rt_network "$RT_DIR/floor" "crft$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    "$RT_DIR/cribench" -cni-floor -cni-conf "$RT_DIR/floor/net.d" -cni-bin "$CNI_BIN_DIR" \
      -pods 0 -parallel "$PARALLEL" -max-parallel-add "$TURNS" >"$RT_DIR/floor-turns.out"
    collect cni-turns "$RT_DIR/floor-turns.out"
    rm -rf "$RT_DIR/floor"
  fi
fi
done
{ for k in "${!res[@]}"; do echo "$k ${res[$k]}"; done; } | sort >"$OUT/rounds.txt"
for k in "${!res[@]}"; do
  # shellcheck disable=SC2086 # the rounds' values, one word each
  res[$k]=$(median_of ${res[$k]})
done

printf '%-34s' metric; for c in "${cols[@]}"; do printf ' %12s' "$c"; done; echo
for k in "${keys[@]}"; do
  u=${unit[$k]}
  printf '%-34s' "$k${u:+ ($u)}"
  for c in "${cols[@]}"; do printf ' %12s' "${res[$c.$k]:--}"; done
  echo
done

# Issue 5's targets, where both figures are in the table.
target() { # KEY VERDICT-EXPR(a=cri-server, c=containerd, f=floor) TEXT
  local a=${res[cri-server.$1]:-} c=${res[containerd.$1]:-} f=${res[cni-plugins.$1]:-}
  [[ -n $a ]] || return 0
  local ok
  ok=$(awk -v a="$a" -v c="${c:-}" -v f="${f:-}" "BEGIN { print (($2) ? \"met\" : \"MISSED\") }") || return 0
  printf '%-7s %s\n' "$ok" "$3: cri-server $a, containerd ${c:--}, plugins ${f:--}"
}
echo
echo "issue 5 targets:"
if [[ -n ${res[containerd.run_pod_median]:-} ]]; then
  target run_pod_median 'a <= c/2' 'RunPodSandbox in sequence, median <= 1/2 containerd'
  target par_run_pod_median 'a <= c/2' 'RunPodSandbox 50 at once, median <= 1/2 containerd'
  target stop_remove_pod_median 'a <= c/2' 'stop+remove, median <= 1/2 containerd'
  target ctr_stop_remove_pod_median 'a <= c/2' 'stop+remove with containers, median <= 1/2 containerd'
  for s in ${MEM_STEPS//,/ }; do
    target "mem_pod_rss@$s" 'a <= c/4' "memory RSS per pod at $s pods <= 1/4 containerd"
    target "mem_pod_pss@$s" 'a <= c/4' "memory PSS per pod at $s pods <= 1/4 containerd"
    target "mem_sharedpid_pod_rss@$s" 'a <= c/4' "memory RSS per shared-PID pod at $s pods <= 1/4 containerd"
    target "mem_sharedpid_pod_pss@$s" 'a <= c/4' "memory PSS per shared-PID pod at $s pods <= 1/4 containerd"
  done
fi
if [[ -n ${res[cni-plugins.run_pod_median]:-} ]]; then
  target run_pod_median 'a <= f+5' 'RunPodSandbox in sequence, median <= plugins ADD + 5 ms'
  target par_run_pod_median 'a <= f+5' 'RunPodSandbox 50 at once, median <= plugins ADD + 5 ms'
fi
if [[ -n ${res[cni-turns.par_run_pod_median]:-} ]]; then
  a=${res[cri-server.par_run_pod_median]:-} t=${res[cni-turns.par_run_pod_median]}
  [[ -z $a ]] || printf '%-7s %s\n' "$(awk -v a="$a" -v t="$t" 'BEGIN { print (a <= t + 5) ? "met" : "MISSED" }')" \
    "RunPodSandbox 50 at once, median <= plugins taking turns ($TURNS at once) + 5 ms: cri-server $a, plugins $t"
fi
