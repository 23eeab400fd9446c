#!/usr/bin/env bash
# Installs every tool the project needs, each pinned to a version. Idempotent:
# a tool already at its version is left alone.
source "$(dirname "$0")/lib.sh"
mkdir -p "$TOOLS_BIN" "$CNI_BIN_DIR"

stamp() { echo "$TOOLS_BIN/.$1-$2"; }

# go_install DEST NAME MODULE/PATH VERSION
go_install() {
  local dest=$1 name=$2 pkg=$3 ver=$4
  if [[ -x $dest/$name && -f $(stamp "$name" "$ver") ]]; then return; fi
  log "installing $name $ver"
  GOBIN=$dest CGO_ENABLED=0 go install "$pkg@$ver"
  touch "$(stamp "$name" "$ver")"
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Debian's dynamic busybox (the static one's shell runs applets in-process),
# iptables for the portmap/masquerade CNI plugins, iproute2 for tests.
apt_install busybox iptables iproute2
# libseccomp-dev: oci/seccomp compiles profiles with libseccomp (cgo); runc and
# crun: the executor benchmark and hack/runtime-tools.sh measure beside them.
apt_install libseccomp-dev runc crun
# gcc + static libc build the test images' small programs (pause, nnp, the
# nginx/httpd stand-ins); util-linux gives ipcs for the images and ipcmk,
# which critest runs on the host.
apt_install gcc libc6-dev util-linux curl
# musl-tools (musl-gcc) and gperf (libseccomp's build): hack/build.sh builds
# the shim static against musl, with libseccomp from Debian's source package
# built by hack/libseccomp-musl.sh (pinned by SHA-256; cached in _output).
apt_install musl-tools gperf patch xz-utils
"$REPO_ROOT/hack/libseccomp-musl.sh"

go_install /usr/local/bin crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
for p in bridge loopback portmap host-local; do
  sub=main; [[ $p == host-local ]] && sub=ipam; [[ $p == portmap ]] && sub=meta
  go_install "$CNI_BIN_DIR" "$p" "github.com/containernetworking/plugins/plugins/$sub/$p" "$CNI_PLUGINS_VERSION"
done
for p in firewall tuning; do
  go_install "$CNI_BIN_DIR" "$p" "github.com/containernetworking/plugins/plugins/meta/$p" "$CNI_PLUGINS_VERSION"
done
go_install "$TOOLS_BIN" registry github.com/google/go-containerregistry/cmd/registry "$GGCR_VERSION"
go_install "$TOOLS_BIN" crane github.com/google/go-containerregistry/cmd/crane "$GGCR_VERSION"

# The harness registry: ggcr's registry handler with blobs on disk and a
# manifest journal (ggcr's cmd/registry is memory-only). Pinned by its go.mod.
if [[ ! -x $TOOLS_BIN/registry-disk || $REPO_ROOT/hack/tools/registry/main.go -nt $TOOLS_BIN/registry-disk ]]; then
  log "building registry-disk"
  (cd "$REPO_ROOT/hack/tools/registry" && CGO_ENABLED=0 go build -o "$TOOLS_BIN/registry-disk" .)
fi

# critest -parallel N (N>1) re-runs itself under the ginkgo CLI; pinned to
# the ginkgo that cri-tools v1.37.0 uses.
go_install "$TOOLS_BIN" ginkgo github.com/onsi/ginkgo/v2/ginkgo v2.32.1

# critest is a test binary; hack/tools/critest/go.mod pins cri-tools.
if [[ ! -x $TOOLS_BIN/critest || ! -f $(stamp critest "$CRITOOLS_VERSION") ]]; then
  log "building critest $CRITOOLS_VERSION"
  (cd "$REPO_ROOT/hack/tools/critest" && go test -c -o "$TOOLS_BIN/critest" sigs.k8s.io/cri-tools/cmd/critest)
  touch "$(stamp critest "$CRITOOLS_VERSION")"
fi

# The kubelet, built from hack/tools/kubelet (pinned k8s.io/kubernetes): the
# e2e runs it in standalone mode against cri-server. A few minutes to build.
if [[ ! -x $TOOLS_BIN/kubelet || ! -f $(stamp kubelet "$KUBELET_VERSION") ]]; then
  log "building kubelet $KUBELET_VERSION"
  (cd "$REPO_ROOT/hack/tools/kubelet" && go build -o "$TOOLS_BIN/kubelet" k8s.io/kubernetes/cmd/kubelet)
  touch "$(stamp kubelet "$KUBELET_VERSION")"
fi

# crictl talks to our socket by default.
if [[ ! -f /etc/crictl.yaml ]] || ! grep -q cri-server /etc/crictl.yaml; then
  cat > /etc/crictl.yaml <<YAML
runtime-endpoint: unix:///run/cri-server/cri-server.sock
image-endpoint: unix:///run/cri-server/cri-server.sock
timeout: 30
YAML
fi
log "tools ready"
