#!/usr/bin/env bash
# Runs hack/critest.sh against a reference runtime, Debian's containerd 1.6
# with runc, configured like cri-server's test config (mirrors to the local
# registry, a private bridge network), to check the harness itself: with
# faithful test images containerd passes every spec but its two idempotence
# failures ("StopContainer/StopPodSandbox should not return an error if not
# found"). Everything runs in a temp dir and is removed afterwards.
#
#   hack/critest-reference.sh [extra critest flags]
#
# Root only. Installs the containerd package if missing (not needed by
# cri-server itself, so not in install-tools.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-runtimes.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
runtimes_init
containerd_start
rc=0
CRI_SOCKET=$CONTAINERD_SOCK CRITEST_REPORT_DIR=${CRITEST_REPORT_DIR:-$REPO_ROOT/_output/critest-reference} \
  hack/critest.sh "$@" || rc=$?
exit "$rc"
