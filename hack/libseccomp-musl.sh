#!/usr/bin/env bash
# Builds libseccomp with musl into _output/musl (lib/libseccomp.a, its
# headers and pkg-config file, and kernel-include/, the kernel's uapi
# headers that musl-gcc's include path lacks), for hack/build.sh's static
# musl shim (hack/static-flags.sh): Debian's libseccomp.a is built against
# glibc, and its fortified __*_chk calls do not link with musl.
#
# The source is Debian's package of the libseccomp this system has
# (libseccomp-dev): the upstream tarball and Debian's patches, from the
# Debian pool on apt's mirror (DEBIAN_MIRROR), each checked against the
# SHA-256 in the package's .dsc. Idempotent: a build of this version is left
# alone (a few seconds otherwise). Needs musl-tools, gperf and curl
# (hack/install-tools.sh).
source "$(dirname "$0")/lib.sh"
VERSION=2.5.4
DEBIAN_REVISION=1+deb12u1
ORIG_SHA256=d82902400405cf0068574ef3dc1fe5f5926207543ba1ae6f8e7a1576351dcbdb
DEBIAN_SHA256=665fc6ad1b9887207b0af1a293a2d7975e2df503a2618d1808b970081f9672f6
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PREFIX=$REPO_ROOT/_output/musl
stamp=$PREFIX/.libseccomp-$VERSION-$DEBIAN_REVISION
[[ -f $stamp ]] && exit 0
# Two builds of one tree at once (a test building while a benchmark does):
# one builds, the other waits and finds it done.
mkdir -p "$REPO_ROOT/_output"
exec 9>"$REPO_ROOT/_output/.libseccomp-musl.lock"
flock 9
[[ -f $stamp ]] && exit 0

log "building libseccomp $VERSION-$DEBIAN_REVISION with musl into $PREFIX"
cache=$REPO_ROOT/_output/cache
mkdir -p "$cache"
fetch() { # fetch FILE SHA256: into $cache, checked
  local f=$1 sum=$2
  if ! echo "$sum  $cache/$f" | sha256sum -c --status 2>/dev/null; then
    curl -fsSL --retry 3 -o "$cache/$f.part" "$MIRROR/pool/main/libs/libseccomp/$f"
    echo "$sum  $cache/$f.part" | sha256sum -c --status ||
      { log "$f: SHA-256 mismatch"; rm -f "$cache/$f.part"; exit 1; }
    mv "$cache/$f.part" "$cache/$f"
  fi
}
fetch "libseccomp_$VERSION.orig.tar.gz" "$ORIG_SHA256"
fetch "libseccomp_$VERSION-$DEBIAN_REVISION.debian.tar.xz" "$DEBIAN_SHA256"

work=$(mktemp -d "$REPO_ROOT/_output/libseccomp-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$cache/libseccomp_$VERSION.orig.tar.gz" -C "$work"
src=$work/libseccomp-$VERSION
tar -xJf "$cache/libseccomp_$VERSION-$DEBIAN_REVISION.debian.tar.xz" -C "$src"
# Debian's patches (3.0 quilt), in its order.
while read -r p; do
  [[ -z $p || $p == \#* ]] && continue
  patch -s -p1 -d "$src" <"$src/debian/patches/$p"
done <"$src/debian/patches/series"

rm -rf "$PREFIX"
# The kernel's uapi headers (linux-libc-dev), which musl's include path
# leaves out: libseccomp's own headers include <asm/unistd.h>.
kinc=$PREFIX/kernel-include
mkdir -p "$kinc"
ln -s /usr/include/linux /usr/include/asm-generic "$kinc/"
ln -s "/usr/include/$(gcc -print-multiarch)/asm" "$kinc/asm"
(
  cd "$src"
  CC=musl-gcc CFLAGS="-O2 -I$kinc" AR_FLAGS=cr ./configure --quiet --prefix="$PREFIX" \
    --enable-static --disable-shared --disable-python >/dev/null
  # Only the library, its headers and its pkg-config file: not the tools,
  # tests or manual pages.
  make -s -j"$(nproc)" -C src >/dev/null
  make -s -C src install >/dev/null
  make -s -C include install >/dev/null
  make -s install-pkgconfDATA >/dev/null
)
rm -f "$PREFIX/lib/libseccomp.la"
touch "$stamp"
log "libseccomp $VERSION-$DEBIAN_REVISION (musl) ready"
