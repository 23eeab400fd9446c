#!/usr/bin/env bash
# Runs the OCI runtime-tools validation suite (github.com/opencontainers/
# runtime-tools, validation/*) against cri-server's executor and runc (and
# crun where it runs) and prints one table: each test's verdict per runtime,
# then the totals. A test passes when it exits 0 and prints no "not ok" line;
# "n/m" means n of its m TAP assertions failed.
#
#   hack/runtime-tools.sh [test-name-regexp]
#
# Needs root and runc (hack/install-tools.sh). Builds the suite from the
# pinned module version into _output/runtime-tools (once). Each test gets
# RUNTIME_TOOLS_TIMEOUT seconds (60).
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

WORK=$(mktemp -d /tmp/runtime-tools.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
go build -o "$WORK/cri-server-oci" ./hack/executor-cli

runtimes=(cri-server runc)
declare -A cmd=([cri-server]=$WORK/cri-server-oci [runc]=runc)
if command -v crun >/dev/null; then runtimes+=(crun); cmd[crun]=crun; fi

# verdict RUNTIME TEST: prints pass, n/m, timeout or error.
verdict() {
  local rt=$1 t=$2 out rc
  out=$WORK/$rt-$(basename "$t").tap
  # The tests read runtimetest and the rootfs tarball from the cwd.
  (cd "$SRC" && RUNTIME=${cmd[$rt]} timeout "$TIMEOUT" "$t" >"$out" 2>&1) && rc=0 || rc=$?
  local total failed
  total=$(grep -cE '^(not )?ok ' "$out" || true)
  failed=$(grep -cE '^not ok ' "$out" || true)
  if ((rc == 124)); then echo timeout
  elif ((failed > 0)); then echo "$failed/$total"
  elif ((rc != 0 || total == 0)); then echo error
  else echo pass
  fi
}

printf '%-36s' test; for rt in "${runtimes[@]}"; do printf ' %-10s' "$rt"; done; echo
declare -A passed
for t in "$SRC"/validation/*.t; do
  name=$(basename "$t" .t)
  [[ $name =~ $FILTER ]] || continue
  printf '%-36s' "$name"
  for rt in "${runtimes[@]}"; do
    v=$(verdict "$rt" "$t")
    [[ $v == pass ]] && passed[$rt]=$((${passed[$rt]:-0} + 1))
    printf ' %-10s' "$v"
  done
  echo
done
n=0
for t in "$SRC"/validation/*.t; do [[ $(basename "$t" .t) =~ $FILTER ]] && n=$((n + 1)); done
for rt in "${runtimes[@]}"; do echo "$rt: ${passed[$rt]:-0} of $n tests pass"; done
if [[ -n ${KEEP_TAP:-} ]]; then mkdir -p "$OUT/tap" && cp "$WORK"/*.tap "$OUT/tap/"; log "TAP output in $OUT/tap"; fi
