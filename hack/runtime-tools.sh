#!/usr/bin/env bash
# Runs the OCI runtime-tools validation suite (github.com/opencontainers/
# runtime-tools, validation/*) against cri-server's executor and runc (and
# crun where it runs) and prints one table: each test's verdict per runtime,
# then the totals. A test passes when it exits 0 and prints no "not ok" line;
# each cell also gives "ok/total" TAP assertions.
#
#   hack/runtime-tools.sh [test-name-regexp]
#
# Needs root, runc and crun (hack/install-tools.sh). Builds the suite from
# the pinned module version into _output/runtime-tools (once). Each test gets
# RUNTIME_TOOLS_TIMEOUT seconds (60). RUNTIMES="cri-server runc crun" picks
# the columns; KEEP_TAP=1 keeps each run's TAP output in _output/runtime-tools/tap.
#
# crun 1.8 refuses a hybrid cgroup layout (v1 controllers plus
# /sys/fs/cgroup/unified), so its column runs every crun command in a private
# mount namespace where /sys/fs/cgroup/unified is unmounted (a wrapper script).
#
# After each test the script looks for what the test left behind: mounts
# under its bundles (in this run's own TMPDIR), processes whose root is a bundle, cgroups named after
# the suite's paths or a container id, runtime state dirs and bundle dirs. It
# removes them and prints "+leak" in that cell, and the details at the end.
# Bundle dirs alone are the suite's own leak (a test that fails before its
# deferred clean-up, e.g. a failing PreFunc); the rest are the runtime's.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }

# master of 2025-05-23: the last tag (v0.9.0, 2018) predates most tests.
RT_VERSION=v0.9.1-0.20250523060157-0ea5ed0382a2
FILTER=${1:-.}
TIMEOUT=${RUNTIME_TOOLS_TIMEOUT:-60}
OUT=$REPO_ROOT/_output/runtime-tools
SRC=$OUT/src-$RT_VERSION

if [[ ! -x $SRC/runtimetest ]]; then
  log "building runtime-tools $RT_VERSION"
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runtime-tools@$RT_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$OUT" && rm -rf "$SRC.tmp" && cp -r "$dir" "$SRC.tmp" && chmod -R u+w "$SRC.tmp"
  # The module zip carries an incomplete vendor dir: build from the proxy.
  rm -rf "$SRC.tmp/vendor"
  (cd "$SRC.tmp" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o runtimetest ./cmd/runtimetest)
  for d in "$SRC.tmp"/validation/*/; do
    n=$(basename "$d"); [[ $n == util ]] && continue
    (cd "$SRC.tmp" && GOFLAGS=-mod=mod go build -o "validation/$n.t" "./validation/$n")
  done
  mv "$SRC.tmp" "$SRC"
fi

# One run at a time: the suite's cgroup paths (/cgrouptest, testdir/...) are
# fixed names, and the leak check must not take another run's for ours.
exec 9>/run/lock/cri-server-runtime-tools.lock
flock -n 9 || { log "another runtime-tools.sh run is going: waiting for it"; flock 9; }
WORK=$(mktemp -d /tmp/runtime-tools.XXXXXX)
# The tests make their bundles with os.MkdirTemp("", "ocitest"): under
# $TMPDIR, so this run's are told apart from any other process's.
TESTTMP=$WORK/tmp
mkdir "$TESTTMP"
# A container in a user namespace must reach its bundle: mktemp made 0700.
chmod 755 "$WORK" "$TESTTMP"
cleanup() {
  awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
# The product, as hack/build.sh builds it: cri-server oci hands over to its
# embedded shim, which is also the containers' init.
hack/build.sh >/dev/null
cp _output/bin/cri-server "$WORK/cri-server-oci"

# Each runtime runs through a wrapper with a state root of this run's own,
# which also notes the ids it creates, so the leak check and its clean-up
# see only this run's containers.
declare -A cmd statedir
IDS=$WORK/ids
: >"$IDS"
for rt in cri-server runc crun; do
  statedir[$rt]=$WORK/state-$rt
  cmd[$rt]=$WORK/$rt
done
wrapper() { # NAME EXEC-LINE
  printf '#!/bin/bash\ncase $1 in create | run) echo "${@: -1}" >>%q ;; esac\n%s\n' "$IDS" "$2" >"$WORK/$1"
  chmod +x "$WORK/$1"
}
wrapper cri-server "exec $WORK/cri-server-oci oci --root ${statedir[cri-server]} \"\$@\""
wrapper runc "exec runc --root ${statedir[runc]} \"\$@\""
# crun 1.8 refuses a hybrid cgroup layout: it runs in a private mount
# namespace without the cgroup v2 mount.
wrapper crun "exec unshare -m --propagation private bash -c 'umount /sys/fs/cgroup/unified && exec crun --root ${statedir[crun]} \"\$@\"' crun \"\$@\""

runtimes=()
for rt in ${RUNTIMES:-cri-server runc crun}; do
  case $rt in
  cri-server) runtimes+=("$rt") ;;
  runc | crun) if command -v "$rt" >/dev/null; then runtimes+=("$rt"); else log "$rt not installed: no column"; fi ;;
  *) log "unknown runtime $rt"; exit 1 ;;
  esac
done

UUID='[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
# Cgroups the suite's containers get: its fixed paths, or the container id
# (a uuid) where each runtime puts a spec without cgroupsPath (runc and
# crun: /<id>; cri-server: /cri-server/<id>).
suite_cgroups() {
  find /sys/fs/cgroup/ -mindepth 2 -maxdepth 5 -type d 2>/dev/null |
    grep -E "/(cgrouptest|testdir)(/|$)|^/sys/fs/cgroup/[^/]+/(cri-server/)?$UUID$" |
    while read -r d; do
      [[ $d =~ $UUID$ ]] && ! grep -qxF "${d##*/}" "$IDS" && continue
      echo "$d"
    done | sort || true
}
bundles() { find "$TESTTMP" -mindepth 1 -maxdepth 1 2>/dev/null | sort || true; }
states() { ls "${statedir[$1]}" 2>/dev/null | sort || true; }
# Pids whose root is a bundle (chroot or no mount namespace) or whose mount
# namespace has a bundle as its root mount.
suite_pids() {
  {
    find /proc/[0-9]*/root -maxdepth 0 -lname "$TESTTMP/*" 2>/dev/null | cut -d/ -f3
    awk -v w="$(basename "$WORK")/tmp/" '$5 == "/" && index($4, w) { split(FILENAME, a, "/"); print a[3] }' /proc/[0-9]*/mountinfo 2>/dev/null
  } | sort -un || true
}
suite_mounts() { awk -v w="$TESTTMP/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r || true; }

LEAKS=$WORK/leaks.log
: >"$LEAKS"
# check_leaks RUNTIME TEST: reports and removes what the test left behind.
# The before-lists are in $WORK/before.*.
check_leaks() {
  local rt=$1 t=$2 found=() x
  local pids mounts cgs newb news
  pids=$(suite_pids)
  mounts=$(suite_mounts)
  cgs=$(comm -13 "$WORK/before.cg" <(suite_cgroups))
  news=$(comm -13 "$WORK/before.state" <(states "$rt"))
  newb=$(comm -13 "$WORK/before.bundles" <(bundles))
  [[ -n $pids ]] && found+=("processes: $(for p in $pids; do printf '%s(%s) ' "$p" "$(tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | cut -c1-40)"; done)")
  [[ -n $mounts ]] && found+=("mounts: $(echo $mounts)")
  [[ -n $cgs ]] && found+=("cgroups: $(echo $cgs)")
  [[ -n $news ]] && found+=("state: $(echo $news)")
  [[ -n $newb ]] && found+=("bundle dirs: $(echo $newb)")
  ((${#found[@]})) || return 0
  for x in "${found[@]}"; do echo "$rt $t: $x" >>"$LEAKS"; done
  # Clean up in dependency order: processes, runtime state, mounts, cgroups, dirs.
  for x in $pids; do kill -9 "$x" 2>/dev/null || true; done
  for x in $news; do "${cmd[$rt]}" delete --force "$x" >/dev/null 2>&1 || true; rm -rf "${statedir[$rt]:?}/$x"; done
  for x in $mounts; do umount -l "$x" 2>/dev/null || true; done
  # A relative cgroupsPath is relative to the caller's cgroup for runc: under
  # the session's process_api cgroup, which is not ours to touch.
  for x in $(echo "$cgs" | sort -r); do
    if [[ $x == */process_api/* ]]; then echo "$rt $t: left alone (under process_api): $x" >>"$LEAKS"; continue; fi
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$x" 2>/dev/null && break; [[ -d $x ]] || break; sleep 0.2; done
  done
  for x in $newb; do
    if suite_mounts | grep -qF "$x"; then echo "$rt $t: still mounted, not removed: $x" >>"$LEAKS"; continue; fi
    rm -rf --one-file-system "$x" 2>>"$LEAKS" || true
  done
  echo leak
}

# verdict RUNTIME TEST: prints pass, skip, fail, error (a non-zero exit)
# or timeout, then "ok/total" TAP assertions, then "+leak" when the
# test left something behind.
verdict() {
  local rt=$1 t=$2 out rc v
  out=$WORK/$rt-$(basename "$t").tap
  suite_cgroups >"$WORK/before.cg"
  states "$rt" >"$WORK/before.state"
  bundles >"$WORK/before.bundles"
  # The tests read runtimetest and the rootfs tarball from the cwd.
  (cd "$SRC" && TMPDIR=$TESTTMP RUNTIME=${cmd[$rt]} timeout "$TIMEOUT" "$t" >"$out" 2>&1) && rc=0 || rc=$?
  local total failed
  total=$(grep -cE '^(not )?ok ' "$out" || true)
  failed=$(grep -cE '^not ok ' "$out" || true)
  local okc=$((total - failed))
  if ((rc == 124)); then v="timeout $okc/$total"
  elif ((failed > 0)); then v="fail $okc/$total"
  elif ((rc != 0)); then v="error $okc/$total"
  # The hook tests assert nothing ("1..0") and print a YAML diagnostic or a
  # WARNING on failure; the *_fail tests print nothing when create fails.
  elif ((total == 0)) && grep -qE '^  ---$|^WARNING' "$out"; then v="fail 0/0"
  # A whole test skipped (not this OS) is one "ok 1 # skip"; runtimetest
  # also skips the checks of every field a spec leaves unset.
  elif ((total == 1)) && grep -qiE '^ok 1 # skip' "$out"; then v="skip $okc/$total"
  else v="pass $okc/$total"
  fi
  [[ -n $(check_leaks "$rt" "$(basename "$t" .t)") ]] && v+=+leak
  echo "$v"
}

# The suite's fixed cgroup names left by an earlier run (of an older
# script, or a runtime's leak) would hide this run's leaks: empty ones go.
old_cgs=$(find /sys/fs/cgroup/ -mindepth 2 -maxdepth 4 -depth -type d \( -name cgrouptest -o -name testdir \) -not -path '*/process_api/*' 2>/dev/null || true)
if [[ -n $old_cgs ]]; then
  log "removing the suite's cgroups left by an earlier run: $(echo $old_cgs)"
  for x in $old_cgs; do rmdir "$x" 2>/dev/null || log "cannot remove $x (in use?)"; done
fi
stale=$(awk '$5 ~ "^/tmp/ocitest[0-9]+(/|$)" { print $5 }' /proc/self/mountinfo)
[[ -z $stale ]] || log "warning: mounts under /tmp/ocitest* (a run with TMPDIR=/tmp, not this one's): $(echo $stale)"
echo "# cell: verdict ok/total TAP assertions; +leak: the test left something behind (listed below)"
[[ " ${runtimes[*]} " == *" crun "* ]] && echo "# crun: run in a private mount namespace without /sys/fs/cgroup/unified (crun 1.8 refuses hybrid cgroups)"
printf '%-36s' test; for rt in "${runtimes[@]}"; do printf ' %-18s' "$rt"; done; echo
declare -A passed leaked
for t in "$SRC"/validation/*.t; do
  name=$(basename "$t" .t)
  [[ $name =~ $FILTER ]] || continue
  printf '%-36s' "$name"
  for rt in "${runtimes[@]}"; do
    v=$(verdict "$rt" "$t")
    [[ $v == pass* ]] && passed[$rt]=$((${passed[$rt]:-0} + 1))
    [[ $v == *+leak ]] && leaked[$rt]=$((${leaked[$rt]:-0} + 1))
    printf ' %-18s' "$v"
  done
  echo
done
n=0
for t in "$SRC"/validation/*.t; do [[ $(basename "$t" .t) =~ $FILTER ]] && n=$((n + 1)); done
for rt in "${runtimes[@]}"; do echo "$rt: ${passed[$rt]:-0} of $n tests pass, ${leaked[$rt]:-0} leaked"; done
if [[ -s $LEAKS ]]; then echo "left behind (removed):"; sed 's/^/  /' "$LEAKS"; fi
if [[ -n ${KEEP_TAP:-} ]]; then mkdir -p "$OUT/tap" && cp "$WORK"/*.tap "$OUT/tap/"; log "TAP output in $OUT/tap"; fi
