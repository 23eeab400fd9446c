#!/usr/bin/env bash
# Runs the end-to-end tests (test/e2e) as CI does: tools, the local registry
# and the test images, then `go test` with CRI_SERVER_E2E=1. The registry is
# stopped afterwards only if this script started it. Root only.
#
#   hack/e2e.sh [go test flags, e.g. -run TestCritest]
#
# Environment: CRI_SERVER_BIN (a prebuilt binary to test; default: the one
# hack/build.sh makes, with the embedded shim), CRITEST_PARALLEL,
# E2E_TIMEOUT (go test -timeout, 60m).
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
hack/install-tools.sh
started=0
if ! hack/registry.sh status >/dev/null 2>&1; then
  hack/registry.sh start
  started=1
fi
cleanup() { if ((started)); then hack/registry.sh stop; fi; }
trap cleanup EXIT
hack/test-images.sh
if [[ -z ${CRI_SERVER_BIN:-} ]]; then
  hack/build.sh
  export CRI_SERVER_BIN=$REPO_ROOT/_output/bin/cri-server
fi
CRI_SERVER_E2E=1 go test -count=1 -v -timeout "${E2E_TIMEOUT:-60m}" "$@" ./test/e2e/...
