#!/usr/bin/env bash
# Benchmarks the executor's command line beside runc and crun:
# create+start+wait+delete of a busybox container running /bin/true, N times
# (default 200) through each command line (`cri-server oci run`, `runc run`,
# `crun run`), alternating in one loop so that all see the same machine
# load, printing median and p95, the ratios to runc, the peak RSS of our
# command line, the executor's per-phase medians (from its log) and the Go
# package-init cost of both of its processes (the command line and the init).
#
# The binary timed is the product: _output/bin/cri-server built by
# hack/build.sh (the shim embedded), run as `cri-server oci run`.
#
# All of it runs inside one private mount namespace in which
# /sys/fs/cgroup/unified (this machine's cgroup v2 mount, hugetlb only) is
# unmounted: crun refuses hybrid cgroups, and this way the three runtimes see
# the same, v1-only, cgroups. Nothing outside the namespace changes.
# The three runtimes' state roots share one tmpfs mounted there, as their
# default roots (/run/...) are on a production node; this machine's /run is
# on its ext4 root, whose inode allocator, after hours of test churn, costs
# each file a runtime creates up to ~0.5 ms (ext4 find_inode_bit and
# recently_deleted in perf). STATE_ON_DISK=1 keeps them on /tmp instead.
#
# Needs root, runc, crun and busybox (apt). Usage: hack/bench-executor.sh [N]
# BASE=<git rev> (e.g. main) also builds that revision with its own
# hack/build.sh and runs it in the same loop, for a before/after on one
# machine load.
set -euo pipefail
if [[ -z ${BENCH_EXECUTOR_IN_NS:-} ]]; then
  BENCH_EXECUTOR_IN_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
N=${1:-200}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/bench-executor.XXXXXX)
CG=/cri-server-bench-$$
# Every container of the run uses (and deletes) the cgroup $CG; remove what a
# failed iteration could leave (each rmdir may fail: under set -e that would
# end the trap before the rm).
trap 'for d in /sys/fs/cgroup/*$CG; do rmdir "$d" 2>/dev/null || true; done; umount "$WORK/states" 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "uptime: $(uptime)"
echo "private mount namespace, /sys/fs/cgroup/unified unmounted: cgroup v1 only for every runtime"
mkdir "$WORK/states"
if [[ -z ${STATE_ON_DISK:-} ]]; then
  mount -t tmpfs -o mode=0711 bench-states "$WORK/states"
  echo "state roots on tmpfs (STATE_ON_DISK=1: on $(stat -f -c %T /tmp))"
else
  echo "state roots on $(stat -f -c %T /tmp) (STATE_ON_DISK=1)"
fi
S=$WORK/states
"$REPO/hack/build.sh"
cp "$REPO/_output/bin/cri-server" "$WORK/cri-server"
if [[ -n ${BASE:-} ]]; then
  # The revision as it built itself: its own hack/build.sh, in its own tree.
  mkdir -p "$WORK/base-src"
  git -C "$REPO" archive "$BASE" | tar -x -C "$WORK/base-src"
  # Downloads already checked (hack/libseccomp-musl.sh's sources): not again.
  if [[ -d $REPO/_output/cache ]]; then
    mkdir -p "$WORK/base-src/_output" && cp -a "$REPO/_output/cache" "$WORK/base-src/_output/"
  fi
  "$WORK/base-src/hack/build.sh"
  cp "$WORK/base-src/_output/bin/cri-server" "$WORK/cri-server-base"
  rm -rf "$WORK/base-src"
fi

# The rootfs: Debian's dynamic busybox and the libraries ldd names.
B=$WORK/bundle; R=$B/rootfs
mkdir -p "$R"/{bin,proc,sys,dev,tmp}
cp /bin/busybox "$R/bin/"
for l in $(ldd /bin/busybox | grep -o '/[^ ]*'); do mkdir -p "$R$(dirname "$l")"; cp "$l" "$R$l"; done
ln -s busybox "$R/bin/true"; ln -s busybox "$R/bin/sh"
(cd "$B" && runc spec)
python3 - "$B/config.json" "$CG" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["linux"]["cgroupsPath"] = sys.argv[2]
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY

# run_one NAME I CMD... : times one run, appending microseconds to $WORK/NAME.ms
run_one() {
  local name=$1 i=$2; shift 2
  local t0 t1
  # bash's own clock: $(date) forks and execs a dynamic glibc program,
  # whose exit, and the next one's fork, exec and start-up, fell inside
  # every runtime's sample: ~1.2 ms here (two $(date) in a row).
  t0=${EPOCHREALTIME//[!0-9]/}
  "$@" run -b "$B" "bench-$name-$$-$i" >/dev/null 2>&1 </dev/null || { echo "$name run $i failed"; "$@" run -b "$B" "bench-$name-$$-x$i" </dev/null || true; exit 1; }
  t1=${EPOCHREALTIME//[!0-9]/}
  echo $((t1 - t0)) >> "$WORK/$name.ms"
}

stats() { # prints "median p95" in ms
  sort -n "$1" | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; p=a[int(NR*0.95+0.5)]; printf "%.2f %.2f\n", m/1000, p/1000}'
}

# The runtimes alternate, so that all see the same load on a shared machine.
names=(cri-server runc crun)
declare -A cmd=(
  [cri-server]="$WORK/cri-server oci --root $S/state"
  [runc]="runc --root $S/runc-state"
  [crun]="crun --root $S/crun-state"
)
if [[ -n ${BASE:-} ]]; then
  names+=(base)
  cmd[base]="$WORK/cri-server-base oci --root $S/base-state"
fi
for n in "${names[@]}"; do : > "$WORK/$n.ms"; done
for i in $(seq 1 "$N"); do
  for n in "${names[@]}"; do
    # shellcheck disable=SC2086 # the command and its flags, split on spaces
    run_one "$n" "$i" ${cmd[$n]}
  done
done
echo "create+start+wait+delete of /bin/true, $N runs each, alternating; uptime: $(uptime)"
read -r rm _ < <(stats "$WORK/runc.ms")
for n in "${names[@]}"; do
  label=$n
  [[ $n == base ]] && label="cri-server@$BASE"
  [[ $n == cri-server ]] && label="cri-server@$(git -C "$REPO" describe --always --dirty)"
  read -r m p < <(stats "$WORK/$n.ms")
  printf "%-26s median %7s ms  p95 %7s ms  ratio to runc %.2f\n" "$label" "$m" "$p" "$(awk -v a="$m" -v b="$rm" 'BEGIN {print a/b}')"
done

# Peak RSS of one cri-server oci run (the command line, the parent of the init).
if [[ -x /usr/bin/time ]]; then
  /usr/bin/time -f "peak RSS of 'cri-server oci run': %M KiB" "$WORK/cri-server" oci --root "$S/state" run -b "$B" bench-rss-$$ </dev/null
fi
# Phase medians from the executor's log (oci/phases.go): create = prep, cgroup
# (mkdir before the clone), clone (namespaces, up to the init's execve),
# gostart (the init's exec, C constructor, Go runtime and package
# init), config (its decoding), rootfs (mounts, pivot_root, masked/read-only
# paths), process, limits, save; then start, the wait for /bin/true and delete.
P=$(( N < 50 ? N : 50 ))
for i in $(seq 1 "$P"); do
  "$WORK/cri-server" oci --root "$S/state" --log "$WORK/log" run -b "$B" bench-log-$$-$i </dev/null >/dev/null 2>&1 || true
done
echo "executor phases, median of $P runs:"
# The median of every duration attribute of the lifecycle log lines, in ms.
awk '
function ms(v) {
  if (v ~ /ms$/) return substr(v, 1, length(v)-2) + 0
  if (v ~ /µs$/) return (substr(v, 1, length(v)-3) + 0) / 1000
  if (v ~ /us$/) return (substr(v, 1, length(v)-2) + 0) / 1000
  if (v ~ /ns$/) return (substr(v, 1, length(v)-2) + 0) / 1e6
  if (v ~ /s$/)  return (substr(v, 1, length(v)-1) + 0) * 1000
  return -1
}
/msg="container (created|started|exited|deleted)"/ {
  match($0, /msg="container [a-z]+"/); ev = substr($0, RSTART+15, RLENGTH-16)
  for (i = 1; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] ~ /^(time|level|msg|container|pid|code)$/ || kv[2] == "") continue
    v = ms(kv[2]); if (v < 0) continue
    key = ev "." kv[1]
    if (!(key in n)) order[++nk] = key
    vals[key, ++n[key]] = v
  }
}
END {
  for (k = 1; k <= nk; k++) {
    key = order[k]; m = n[key]
    for (i = 1; i <= m; i++) a[i] = vals[key, i]
    # insertion sort: a few hundred values at most
    for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j+1] = a[j]; j-- } a[j+1] = x }
    printf "  %-18s %7.3f ms\n", key, a[int((m+1)/2)]
  }
}
' "$WORK/log"
# Go start-up of the two processes of a run: the command line, then the
# re-exec'd init (its lines follow the second "init runtime").
GODEBUG=inittrace=1 "$WORK/cri-server" oci --root "$S/state" run -b "$B" bench-init-$$ </dev/null 2>"$WORK/inittrace" >/dev/null || true
awk '/^init runtime /{p++} /^init /{n[p]++; ms[p]+=$5}
  END {printf "Go package init: command line %d packages %.3f ms; re-exec'"'"'d init %d packages %.3f ms\n", n[1], ms[1], n[2], ms[2]}' "$WORK/inittrace"
sort -k5 -n -r "$WORK/inittrace" | grep '^init ' | head -8 | sed 's/^/  heaviest: /'
