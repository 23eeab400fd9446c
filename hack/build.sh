#!/usr/bin/env bash
# Builds cri-server into _output/bin: first cmd/cri-server-shim (the
# per-container monitor and init), written into cmd/cri-server where
# go:embed finds it, then cri-server with the tag embedshim, which embeds it.
# The product stays one file; a plain `go build ./cmd/cri-server` works too,
# without the shim (the daemon then re-executes itself).
source "$(dirname "$0")/lib.sh"
mkdir -p "$REPO_ROOT/_output/bin"
cd "$REPO_ROOT"
ver=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
ldflags="-X github.com/cri-server/cri-server/version.Version=$ver"
# -s -w: the shim lives in a memfd, in RAM; its symbols and DWARF would too.
# Static with musl (hack/static-flags.sh): it starts once per container and
# per create, and glibc's dynamic loader and CPU-feature probing were
# ~0.4 + ~0.25 ms of each start.
source "$REPO_ROOT/hack/static-flags.sh"
"$REPO_ROOT/hack/libseccomp-musl.sh"
env "${STATIC_ENV[@]}" go build -tags "$STATIC_TAGS" -ldflags "$ldflags -s -w $STATIC_LDFLAGS" -o cmd/cri-server/cri-server-shim ./cmd/cri-server-shim
# Its name in the command line's on-disk cache (cli.Options.InitDigest),
# for Go and for the C constructor that hands `cri-server oci` over to it
# (cmd/cri-server/ocishim_embed.go).
digest=$(sha256sum cmd/cri-server/cri-server-shim | cut -c1-32)
printf '%s' "$digest" >cmd/cri-server/cri-server-shim.digest
printf '#define CRISERVER_SHIM_DIGEST "%s"\n#define CRISERVER_SHIM_SIZE %sL\n' \
  "$digest" "$(stat -c %s cmd/cri-server/cri-server-shim)" >cmd/cri-server/cri-server-shim.h
# The daemon static with musl too: every `cri-server oci` starts here before
# its constructor hands over to the shim, and pod-init is this binary.
env "${STATIC_ENV[@]}" go build -tags "embedshim,$STATIC_TAGS" -ldflags "$ldflags $STATIC_LDFLAGS" -o _output/bin/cri-server ./cmd/cri-server
log "built _output/bin/cri-server ($ver, shim $(stat -c %s cmd/cri-server/cri-server-shim) bytes)"
