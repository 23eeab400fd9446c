#!/usr/bin/env bash
# Builds cri-server into _output/bin.
source "$(dirname "$0")/lib.sh"
mkdir -p "$REPO_ROOT/_output/bin"
cd "$REPO_ROOT"
ver=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
go build -ldflags "-X github.com/cri-server/cri-server/version.Version=$ver" -o _output/bin/cri-server ./cmd/cri-server
log "built _output/bin/cri-server ($ver)"
