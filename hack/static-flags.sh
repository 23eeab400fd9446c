# Go build flags for a static binary with cgo (the executor's nsenter
# constructor, libseccomp): for the binaries that start once per container
# (the shim: monitor and init; the executor's command line in benchmarks),
# where the dynamic loader's work (libc, libseccomp) cost ~0.4 ms of CPU per
# start. netgo/osusergo: no glibc NSS, which a static glibc cannot load.
# Needs libc6-dev and libseccomp-dev (their .a files). Sourced, not run.
STATIC_TAGS=osusergo,netgo
STATIC_LDFLAGS="-linkmode external -extldflags -static"
