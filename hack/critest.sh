#!/usr/bin/env bash
# Runs critest's validate suite against a running cri-server and prints
#   critest: N passed, N failed, N skipped
# on its own line, then "FAILED: <spec>" for each failing spec.
#
#   hack/critest.sh [extra critest flags, e.g. -ginkgo.focus='Image Manager']
#
# Environment:
#   CRI_SOCKET          socket of the server under test (/run/cri-server/cri-server.sock)
#   CRITEST_REPORT_DIR  where junit.xml and critest.log go (_output/critest)
#   CRITEST_PARALLEL    ginkgo nodes (1; >1 needs the ginkgo CLI in PATH)
#   CRITEST_TIMEOUT     whole-suite timeout (40m)
#   CRITEST_VERBOSE=1   also stream critest's output (it always goes to critest.log)
#   SKIP_IMAGES=1       do not start the registry / push the test images first
#   CRITEST_EXCLUDE     spec list to skip (test/e2e/critest-excluded.txt; "" for none)
#
# The server must resolve registry.k8s.io, gcr.io and k8s.gcr.io through the
# local registry ($REGISTRY_ADDR): see test/e2e for the config. critest's
# -registry-prefix is not used: it drops every image's tag.
#
# Exit status: 0 all ran specs passed, 1 some failed, 2 critest produced no
# readable report (it could not run).
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

SOCK=${CRI_SOCKET:-/run/cri-server/cri-server.sock}
DIR=${CRITEST_REPORT_DIR:-$REPO_ROOT/_output/critest}
PARALLEL=${CRITEST_PARALLEL:-1}
TIMEOUT=${CRITEST_TIMEOUT:-40m}

[[ -S $SOCK ]] || { log "no socket at $SOCK: start cri-server first (or set CRI_SOCKET)"; exit 2; }
[[ -x $TOOLS_BIN/critest ]] || hack/install-tools.sh
if [[ ${SKIP_IMAGES:-0} != 1 ]]; then
  hack/registry.sh start
  hack/test-images.sh
fi

mkdir -p "$DIR"
rm -f "$DIR/junit.xml"
args=(
  -runtime-endpoint "unix://$SOCK" -image-endpoint "unix://$SOCK"
  -ginkgo.junit-report "$DIR/junit.xml"
  -ginkgo.timeout "$TIMEOUT"
  -ginkgo.no-color -ginkgo.v
  "$@"
)
EXCLUDE=${CRITEST_EXCLUDE-$REPO_ROOT/test/e2e/critest-excluded.txt}
if [[ -n $EXCLUDE ]]; then
  skip=$(go run ./test/e2e/cmd/critest-summary -skip "$EXCLUDE")
  [[ -z $skip ]] || args+=(-ginkgo.skip "$skip")
fi
# Only when asked: ginkgo rejects a -parallel flag it sees as go test's own.
((PARALLEL > 1)) && args=(-parallel "$PARALLEL" "${args[@]}")
log "critest ${args[*]} (log: $DIR/critest.log)"
# critest runs from its report dir: specs write scratch files in the cwd.
if [[ ${CRITEST_VERBOSE:-0} == 1 ]]; then
  (cd "$DIR" && "$TOOLS_BIN/critest" "${args[@]}") 2>&1 | tee "$DIR/critest.log" >&2 || true
else
  (cd "$DIR" && "$TOOLS_BIN/critest" "${args[@]}") >"$DIR/critest.log" 2>&1 || true
fi

summary=$(go run ./test/e2e/cmd/critest-summary "$DIR/junit.xml") || {
  log "critest left no readable report; last lines of $DIR/critest.log:"
  tail -20 "$DIR/critest.log" >&2
  exit 2
}
echo "$summary"
log "JUnit report: $DIR/junit.xml"
grep -q '^FAILED:' <<<"$summary" && exit 1
exit 0
