#!/usr/bin/env bash
# Pull+unpack benchmark (issue 4): cri-server pulls (a) a busybox image built
# from Debian's busybox and (b) a generated image of 5 layers, 300 MB of
# incompressible data in 20,000 files, from a local registry on a free port.
# Prints wall time, MB/s (compressed bytes over wall time) and the daemon's
# peak RSS, and GNU tar's extraction of the same layers as the disk's floor
# (disk-write: the same bytes written as one file, the raw write speed).
# Phases are separated: this disk writes slowly for ~30 s after mass deletes
# (ext4 without a journal skips inodes freed in the last 30 s, scanning them
# on every create: recently_deleted() in the kernel's inode allocator), so
# nothing is deleted until the end; leave a minute between two runs, since
# the end of one deletes some 60,000 files. Run as root.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }
hack/install-tools.sh >/dev/null

W=$(mktemp -d /var/tmp/bench-images.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  { grep -o " $W[^ ]*" /proc/self/mountinfo || true; } | while read -r m; do umount -l "$m" || true; done
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
REG=127.0.0.1:$PORT
registry -port "$PORT" >"$W/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

log "generating images"
mkdir -p "$W/layers"
# (a) busybox: Debian's binary and its applet links.
mkdir -p "$W/bb/bin"
cp "$(command -v busybox)" "$W/bb/bin/busybox"
for a in sh ls cat echo sleep true; do ln -sf busybox "$W/bb/bin/$a"; done
tar -C "$W/bb" -cf "$W/layers/busybox.tar" .
# (b) 5 layers x 4,000 files x 15 KB of random bytes.
python3 - "$W/layers" <<'PY'
import io, os, sys, tarfile
out = sys.argv[1]
for l in range(5):
    with tarfile.open(f"{out}/big{l}.tar", "w") as tf:
        for d in range(40):
            ti = tarfile.TarInfo(f"l{l}/d{d}"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
            tf.addfile(ti)
            for f in range(100):
                data = os.urandom(15 * 1024)
                ti = tarfile.TarInfo(f"l{l}/d{d}/f{f}"); ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
PY
crane append --insecure -f "$W/layers/busybox.tar" -t "$REG/bench/busybox:1" >/dev/null
big_layers=$(for l in 0 1 2 3 4; do printf -- "-f %s " "$W/layers/big$l.tar"; done)
crane append --insecure $big_layers -t "$REG/bench/big:1" >/dev/null
sync

go build -o "$W/cri-server" ./cmd/cri-server

# floor: GNU tar extracting the uncompressed layers, then one sync.
floor() {
  local dst=$W/floor-$1; mkdir -p "$dst"; shift
  local t0=$(date +%s.%N)
  for f in "$@"; do tar -C "$dst" -xf "$f"; done
  sync
  echo "$(date +%s.%N) - $t0" | bc
}

# disk_write NAME TAR...: the disk's own write speed: the same bytes as one
# file, then one sync.
disk_write() {
  local dst=$W/disk-$1; mkdir -p "$dst"; shift
  local t0=$(date +%s.%N)
  cat "$@" >"$dst/all"
  sync
  echo "$(date +%s.%N) - $t0" | bc
}

# pull NAME REF: a fresh daemon pulls REF; prints seconds and peak RSS (MB).
pull() {
  local name=$1 ref=$2 d=$W/d-$1
  mkdir -p "$d"
  "$W/cri-server" serve --root "$d/root" --state "$d/state" --listen "$d/state/cri.sock" \
    --cni-conf-dir "$d/net.d" --log-level info >"$d/log" 2>&1 &
  local pid=$!; PIDS+=($pid)
  for _ in $(seq 100); do [[ -S $d/state/cri.sock ]] && break; sleep 0.05; done
  local t0=$(date +%s.%N)
  crictl --image-endpoint "unix://$d/state/cri.sock" --timeout 600s pull "$ref" >/dev/null
  local t1=$(date +%s.%N)
  local rss=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status)
  kill "$pid"; wait "$pid" || true
  echo "$(echo "$t1 - $t0" | bc) $rss"
}

# pull_containerd NAME REF: the same with Debian's containerd and its CRI
# plugin, its defaults otherwise (it keeps layer blobs after unpacking).
pull_containerd() {
  local name=$1 ref=$2 d=$W/ctrd-$1
  mkdir -p "$d"
  cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri".cni]
  conf_dir = "$d/net.d"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REG"]
  endpoint = ["http://$REG"]
TOML
  containerd --config "$d/config.toml" >"$d/log" 2>&1 &
  local pid=$!; PIDS+=($pid)
  for _ in $(seq 100); do [[ -S $d/containerd.sock ]] && break; sleep 0.05; done
  sleep 0.5
  local t0=$(date +%s.%N)
  crictl --image-endpoint "unix://$d/containerd.sock" --timeout 600s pull "$ref" >/dev/null
  local t1=$(date +%s.%N)
  local rss=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$pid/status)
  kill "$pid"; wait "$pid" || true
  echo "$(echo "$t1 - $t0" | bc) $rss"
}

size_of() { crane manifest --insecure "$1" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))'; }

row() { printf '%-10s %-12s %9.2f %9.1f %10s\n' "$1" "$2" "$3" "$(echo "$bytes / 1000000 / $3" | bc -l)" "$4"; }

# BENCH_ROUNDS (default 1) repeats each measurement, the runtimes taking
# turns, so that a noisy neighbour's burst shows as one odd row, not as a
# skewed ratio.
ROUNDS=${BENCH_ROUNDS:-1}
printf '%-10s %-12s %9s %9s %10s\n' image runtime seconds MB/s peakRSS_MB
for img in busybox big; do
  ref=$REG/bench/$img:1
  bytes=$(size_of "$ref")
  if [[ $img == busybox ]]; then tars=("$W/layers/busybox.tar"); else tars=("$W"/layers/big?.tar); fi
  for r in $(seq "$ROUNDS"); do
    dt=$(disk_write "$img-$r" "${tars[@]}")
    ft=$(floor "$img-$r" "${tars[@]}")
    sleep 2
    read -r secs rss < <(pull "$img-$r" "$ref")
    row "$img" disk-write "$dt" -
    row "$img" gnu-tar "$ft" -
    row "$img" cri-server "$secs" "$rss"
    if command -v containerd >/dev/null; then
      sleep 2
      read -r secs rss < <(pull_containerd "$img-$r" "$ref")
      row "$img" containerd "$secs" "$rss"
    fi
  done
done
