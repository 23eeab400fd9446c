#!/usr/bin/env bash
# Local registry for the test images: hack/registry.sh start|stop|status.
# Listens on $REGISTRY_ADDR (127.0.0.1:5000), keeps blobs and a manifest
# journal under _output/registry, so a restart keeps what was pushed.
# Idempotent: start on a running registry and stop on a stopped one are no-ops.
source "$(dirname "$0")/lib.sh"

REGISTRY_DIR=${REGISTRY_DIR:-$REPO_ROOT/_output/registry}
PIDFILE=$REGISTRY_DIR/registry.pid
LOGFILE=$REGISTRY_DIR/registry.log
BIN=$TOOLS_BIN/registry-disk

running() {
  [[ -f $PIDFILE ]] || return 1
  local pid; pid=$(<"$PIDFILE")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null &&
    grep -q registry-disk "/proc/$pid/cmdline" 2>/dev/null
}

answers() { curl -fs -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }

start() {
  if running; then
    answers && { log "registry already running (pid $(<"$PIDFILE")) on $REGISTRY_ADDR"; return 0; }
  fi
  if answers; then
    log "something else already answers on $REGISTRY_ADDR; not starting a second registry"
    return 1
  fi
  [[ -x $BIN ]] || "$REPO_ROOT/hack/install-tools.sh"
  mkdir -p "$REGISTRY_DIR"
  # setsid: the registry must not die with the shell that started it.
  setsid "$BIN" -addr "$REGISTRY_ADDR" -dir "$REGISTRY_DIR" >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq 100); do
    if answers; then log "registry up on $REGISTRY_ADDR (pid $(<"$PIDFILE"), storage $REGISTRY_DIR)"; return 0; fi
    running || break
    sleep 0.1
  done
  log "registry did not come up; last log lines:"; tail -5 "$LOGFILE" >&2
  stop
  return 1
}

stop() {
  if ! running; then rm -f "$PIDFILE"; log "registry not running"; return 0; fi
  local pid; pid=$(<"$PIDFILE")
  kill "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PIDFILE"
  log "registry stopped"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) if running && answers; then echo "running pid $(<"$PIDFILE") on $REGISTRY_ADDR"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
