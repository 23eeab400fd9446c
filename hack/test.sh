#!/usr/bin/env bash
# The README's test command: set up this machine and run every test:
# formatting and vet, unit and root integration tests, then end to end.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root: the integration tests use namespaces, mounts and cgroups"; exit 1; }
hack/install-tools.sh
hack/build.sh

log "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
[[ -z $unformatted ]] || { echo "gofmt would change:"; echo "$unformatted"; exit 1; }
go vet ./...

log "unit and integration tests (root), with the race detector"
go test -race -count=1 -timeout 20m ./...

log "end to end: a private cri-server, crictl, critest"
hack/e2e.sh

log "end to end: exec, attach and port-forward again over websocket (what kubectl uses)"
CRITEST_ARGS="-websocket-exec -websocket-attach -websocket-portforward" \
  CRITEST_FOCUS='Streaming runtime should support streaming interfaces runtime should support (attach|exec|portforward)' \
  hack/e2e.sh -run TestCritest
