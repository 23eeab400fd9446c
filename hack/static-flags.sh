# Go build settings for the shim (cmd/cri-server-shim), which starts once per
# container and per create (the monitor and the init) and runs every
# `cri-server oci` command: a static binary with cgo (the executor's nsenter
# constructor, the C monitor, libseccomp) against musl, not glibc. Static:
# the dynamic loader's work (libc, libseccomp) cost ~0.4 ms of CPU per start.
# musl: glibc's start-up reads the CPU's features and caches with CPUID
# (init_cpu_features, init_cacheinfo), which a VM traps to its hypervisor:
# ~0.25 ms per start here. netgo/osusergo: no libc NSS.
# libseccomp for musl is built by hack/libseccomp-musl.sh (build.sh runs it);
# musl-gcc comes from musl-tools (hack/install-tools.sh). Sourced, not run:
#   env "${STATIC_ENV[@]}" go build -tags "$STATIC_TAGS" -ldflags "$STATIC_LDFLAGS" ...
MUSL_PREFIX=$REPO_ROOT/_output/musl
STATIC_TAGS=osusergo,netgo
STATIC_LDFLAGS="-linkmode external -extldflags -static"
STATIC_ENV=(
  CGO_ENABLED=1 CC=musl-gcc
  # The kernel's uapi headers, which musl-gcc's include path leaves out.
  CGO_CFLAGS="-O2 -g -I$MUSL_PREFIX/kernel-include"
  # Only the musl libseccomp: never the system's (glibc) one.
  PKG_CONFIG_LIBDIR="$MUSL_PREFIX/lib/pkgconfig" PKG_CONFIG_PATH=
)
