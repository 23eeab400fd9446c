#!/usr/bin/env bash
# Builds every image critest's validate suite (cri-tools v1.37.0) pulls and
# pushes it to the local registry ($REGISTRY_ADDR, see hack/registry.sh)
# under its upstream repository path, so that a runtime mirroring
# registry.k8s.io, gcr.io and k8s.gcr.io to the local registry pulls them by
# their real names:
#   registry.k8s.io/e2e-test-images/busybox:1.29-2 -> $REGISTRY_ADDR/e2e-test-images/busybox:1.29-2
#   gcr.io/k8s-staging-cri-tools/test-image-tag:test -> $REGISTRY_ADDR/k8s-staging-cri-tools/test-image-tag:test
#   registry.k8s.io/pause:3.9, k8s.gcr.io/pause:3.9  -> $REGISTRY_ADDR/pause:3.9
# No docker: root filesystems are assembled here, packed as reproducible
# tarballs and turned into images with crane. Images that are multi-arch
# indexes upstream are pushed as an index holding the linux/amd64 image.
#
# Idempotent and fast: an image is rebuilt only when its recipe changed, the
# registry lost it, or FORCE=1. Usage: hack/test-images.sh [--list]
source "$(dirname "$0")/lib.sh"
umask 022

FORCE=${FORCE:-0}
REG=$REGISTRY_ADDR
SRC=$REPO_ROOT/test/images
WORK=$REPO_ROOT/_output/images
CRANE=(crane --insecure)
E2E=e2e-test-images
CRI=k8s-staging-cri-tools
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [[ ${1:-} == --list ]]; then LIST_ONLY=1; else LIST_ONLY=0; fi

mkdir -p "$WORK/bin" "$WORK/layers" "$WORK/stamps" "$WORK/rootfs"

# tarball DIR OUT: a layer tarball whose bytes depend only on DIR's content
# (names sorted, times zeroed, numeric owners), so unchanged inputs give
# unchanged digests. Hard links stay hard links.
tarball() {
  local dir=$1 out=$2
  tar --sort=name --mtime=@0 --numeric-owner --format=gnu --no-acls --no-xattrs \
    -C "$dir" -cf "$out.tmp" .
  if [[ -f $out ]] && cmp -s "$out" "$out.tmp"; then rm "$out.tmp"; else mv "$out.tmp" "$out"; fi
}

# program NAME: the static build of test/images/src/NAME.c.
program() {
  local src=$SRC/src/$1.c out=$WORK/bin/$1
  if [[ ! -x $out || $src -nt $out ]]; then
    gcc -static -O2 -Wall -Werror -s -o "$out" "$src"
  fi
  echo "$out"
}

# install_with_libs BIN ROOT DEST: BIN at ROOT/DEST plus the shared libraries
# ldd names, at the same paths as on this host.
install_with_libs() {
  local bin=$1 root=$2 dest=$3 lib
  install -D -m 0755 "$bin" "$root$dest"
  for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    [[ -e $root$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

# The busybox base: Debian's dynamic busybox with its libc and every applet
# as a hard link in /bin (only there, so a masked /bin/ls really masks ls;
# a static busybox's sh would run applets in-process and never exec). pgrep
# and ipcs, which Debian's busybox lacks and specs call, are added: pgrep as
# a script over /proc, ipcs as util-linux's binary.
build_base() {
  local r=$WORK/rootfs/base a
  rm -rf "$r"
  mkdir -p "$r"/{bin,dev,etc,home,proc,root,sys,tmp,usr/bin,usr/sbin,usr/local/bin,var/www,var/spool/mail,var/run}
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  install_with_libs /bin/busybox "$r" /bin/busybox
  for a in $(/bin/busybox --list); do
    [[ -e $r/bin/$a ]] || ln "$r/bin/busybox" "$r/bin/$a"
  done
  install_with_libs "$(command -v ipcs)" "$r" /bin/ipcs
  cp -a "$SRC/rootfs/base/." "$r/"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
  tarball "$r" "$WORK/layers/base.tar"
}

# layer NAME DIR...: one tarball holding the union of the given trees
# (test/images/rootfs/NAME when no DIR is given).
layer() {
  local name=$1; shift
  local r=$WORK/rootfs/$name d
  rm -rf "$r"; mkdir -p "$r"
  (($#)) || set -- "$SRC/rootfs/$name"
  for d in "$@"; do cp -a "$d/." "$r/"; done
  tarball "$r" "$WORK/layers/$name.tar"
}

build_layers() {
  local r webserver
  build_base
  webserver=$(program webserver)

  r=$WORK/stage/nginx-bin; rm -rf "$r"; mkdir -p "$r/usr/sbin" "$r/var/log/nginx" "$r/var/cache/nginx"
  install -m 0755 "$webserver" "$r/usr/sbin/nginx"
  layer nginx "$r" "$SRC/rootfs/nginx"
  layer hostnet-nginx "$SRC/rootfs/hostnet-nginx"

  r=$WORK/stage/httpd-bin; rm -rf "$r"; mkdir -p "$r/usr/local/apache2/bin" "$r/usr/local/apache2/logs"
  install -m 0755 "$webserver" "$r/usr/local/apache2/bin/httpd"
  layer httpd "$r" "$SRC/rootfs/httpd"

  # nnp is setuid root: with no_new_privs its euid stays the caller's.
  r=$WORK/stage/nnp-bin; rm -rf "$r"; mkdir -p "$r/usr/local/bin"
  install -m 4755 -o 0 -g 0 "$(program nnp)" "$r/usr/local/bin/nnp"
  layer nonewprivs "$r"

  r=$WORK/stage/pause-bin; rm -rf "$r"; mkdir -p "$r"
  install -m 0755 "$(program pause)" "$r/pause"
  layer pause "$r"

  r=$WORK/stage/predefined-bin; rm -rf "$r"; mkdir -p "$r/home/default-user"
  chown 1000:1000 "$r/home/default-user"; chmod 2755 "$r/home/default-user"
  layer predefined-group "$r" "$SRC/rootfs/predefined-group"

  # images/image-test upstream: busybox plus one empty file named after the
  # image or tag, so that each is a distinct image.
  local f
  for f in test-image-1 test-image-2 test-image-3 test-image-latest test-image-digest same-image test all; do
    r=$WORK/stage/file-$f; rm -rf "$r"; mkdir -p "$r"; : >"$r/$f"; chmod 0644 "$r/$f"
    layer "file-$f" "$r"
  done
}

pushed=0 skipped=0
# image KIND REPO "TAG..." "LAYER..." [crane mutate flags...]
# KIND is index (pushed as a one-platform index, as multi-arch upstream
# images are) or manifest.
image() {
  local kind=$1 repo=$2 tags=($3) layers=($4); shift 4
  local mutate=(--set-platform linux/amd64)
  # crane mutate -e appends: the default PATH only when the image sets none.
  [[ " $* " == *" PATH="* ]] || mutate+=(-e "$PATH_ENV")
  mutate+=("$@")
  local t0=${tags[0]} t l recipe stamp need=0
  if ((LIST_ONLY)); then for t in "${tags[@]}"; do echo "$REG/$repo:$t"; done; return; fi
  recipe=$({
    echo "$kind ${mutate[*]}"
    for l in "${layers[@]}"; do sha256sum <"$WORK/layers/$l.tar"; done
  } | sha256sum | cut -d' ' -f1)
  for t in "${tags[@]}"; do
    stamp=$WORK/stamps/${repo//\//_}_$t
    if [[ $FORCE == 1 || ! -f $stamp ]] || [[ $(head -1 "$stamp") != "$recipe" ]] ||
      [[ $("${CRANE[@]}" digest "$REG/$repo:$t" 2>/dev/null) != "$(sed -n 2p "$stamp")" ]]; then
      need=1
    fi
  done
  if ((!need)); then skipped=$((skipped + 1)); return; fi

  local tmp=$REG/$repo:cri-server-build-tmp args=() ref digest
  for l in "${layers[@]}"; do args+=(-f "$WORK/layers/$l.tar"); done
  "${CRANE[@]}" append "${args[@]}" -t "$tmp" >/dev/null 2>&1
  # Pushed by digest: the final tag is written once, when the image is whole.
  ref=$("${CRANE[@]}" mutate "$tmp" "${mutate[@]}" --repo "$REG/$repo" 2>/dev/null | tail -1)
  if [[ $kind == index ]]; then
    "${CRANE[@]}" index append --docker-empty-base -m "$ref" -t "$REG/$repo:$t0" >/dev/null 2>&1
  else
    "${CRANE[@]}" tag "$ref" "$t0" >/dev/null 2>&1
  fi
  for t in "${tags[@]:1}"; do "${CRANE[@]}" tag "$REG/$repo:$t0" "$t" >/dev/null 2>&1; done
  "${CRANE[@]}" delete "$tmp" >/dev/null 2>&1 || true
  digest=$("${CRANE[@]}" digest "$REG/$repo:$t0")
  for t in "${tags[@]}"; do printf '%s\n%s\n' "$recipe" "$digest" >"$WORK/stamps/${repo//\//_}_$t"; done
  log "pushed $REG/$repo:{$(IFS=,; echo "${tags[*]}")} $digest"
  pushed=$((pushed + 1))
}

all_images() {
  # framework.DefaultLinuxContainerImage and friends.
  image index $E2E/busybox "1.29-2" "base" --cmd sh
  image index $E2E/nginx "1.14-2" "base nginx" --cmd "nginx,-g,daemon off;" --exposed-ports 80/tcp
  image index $E2E/httpd "2.4.39-4" "base httpd" --cmd httpd-foreground --exposed-ports 80/tcp \
    -e PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    -e HTTPD_PREFIX=/usr/local/apache2 -w /usr/local/apache2
  image index $E2E/nonewprivs "1.3" "base nonewprivs" --entrypoint /usr/local/bin/nnp
  # pause:3.9, pulled under two registries (the same image twice).
  image index pause "3.9" "pause" --entrypoint /pause -u 65535:65535
  # cri-tools images/build: hostnet-nginx-$ARCH is a plain image; it is
  # nginx with a config listening on 12003.
  image manifest $CRI/hostnet-nginx-amd64 "latest" "base nginx hostnet-nginx" \
    --cmd "nginx,-g,daemon off;" --exposed-ports 12003/tcp
  image index $CRI/test-image-user-uid "latest" "base" -u 1002
  image index $CRI/test-image-user-username "latest" "base" -u www-data
  image index $CRI/test-image-user-uid-group "latest" "base" -u 1003:1004
  image index $CRI/test-image-user-username-group "latest" "base" -u www-data:1004
  image index $CRI/test-image-predefined-group "latest" "base predefined-group" -u 1000
  local n
  for n in test-image-1 test-image-2 test-image-3 test-image-latest test-image-digest; do
    image index $CRI/$n "latest" "base file-$n" --cmd sh
  done
  image index $CRI/test-image-tags "1 2 3" "base file-same-image" --cmd sh
  image index $CRI/test-image-tag "test" "base file-test" --cmd sh
  image index $CRI/test-image-tag "all" "base file-all" --cmd sh
}

if ((LIST_ONLY)); then all_images; exit 0; fi
"${CRANE[@]}" catalog "$REG" >/dev/null 2>&1 || { log "no registry answers on $REG: run hack/registry.sh start"; exit 1; }
build_layers
all_images
log "images ready on $REG: $pushed pushed, $skipped already there"
