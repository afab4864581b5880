#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd, kubectl, helm) from the Go module proxy
# into a cache directory keyed by version, in the layout controller-runtime's envtest expects
# (KUBEBUILDER_ASSETS). Binaries already built are skipped, so a warm run takes a second.
#
# Prints the assets directory on its last line. Honours an existing KUBEBUILDER_ASSETS that
# already holds the binaries (e.g. from `setup-envtest use 1.34 -p path`), building only helm
# when it is missing there.
#
# Usage: build.sh [COMPONENT...]
#   control plane (the default, what `make test` needs): etcd kube-apiserver kubectl helm
#   node, only when named (the one-node cluster of hack/cluster): kubelet kube-controller-manager
#   kube-scheduler kube-proxy pause (the pod sandbox binary, static, from the same source)
#   coredns (the cluster DNS, from hack/cluster/dns).
# The benchmarks need no helm, so a fresh machine builds less before them.
set -euo pipefail

components=("$@")
if [[ ${#components[@]} -eq 0 ]]; then
  components=(etcd kube-apiserver kubectl helm)
fi
wanted() { [[ " ${components[*]} " == *" $1 "* ]]; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Keep these in step with kube/go.mod and etcd/go.mod.
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
HELM_VERSION=v3.19.5

cache_root="${TASKQUEUE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskqueue}"
assets="${KUBEBUILDER_ASSETS:-$cache_root/envtest/${KUBE_VERSION#v}}"
mkdir -p "$assets"
# One build at a time per assets directory: `make bench` starts one early, in the background,
# and the benchmark run's own call then waits for it and finds everything built.
exec 9>"$assets/.build.lock"
flock 9

log() { printf '[envtest] %s\n' "$*" >&2; }

build() {  # build NAME DIR PACKAGE LDFLAGS
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  wanted "$name" || return 0
  if [[ -x "$assets/$name" ]]; then
    log "$name: already built in $assets"
    return
  fi
  log "$name: building $pkg (first build takes several minutes)"
  local started=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$assets/$name.tmp" "$pkg")
  mv "$assets/$name.tmp" "$assets/$name"
  log "$name: built in $((SECONDS - started)) s"
}

minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
kube_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd "$here/etcd" go.etcd.io/etcd/server/v3 \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}"
build kube-apiserver "$here/kube" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"
build kubectl "$here/kube" k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"
for node_cmd in kubelet kube-controller-manager kube-scheduler kube-proxy; do
  build "$node_cmd" "$here/kube" "k8s.io/kubernetes/cmd/$node_cmd" "$kube_ldflags"
done

build coredns "$here/../cluster/dns" taskqueue.dev/hack/cluster/dns "-s -w"

# The pod sandbox ("pause") binary: there is no registry to pull registry.k8s.io/pause from, so
# it is compiled from the C source that the k8s.io/kubernetes module ships, statically, since
# the image that holds it has nothing else.
if wanted pause && [[ ! -x "$assets/pause" ]]; then
  src="$(cd "$here/kube" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  [[ -f $src ]] || (cd "$here/kube" && go mod download k8s.io/kubernetes)
  log "pause: compiling $src"
  gcc -Os -Wall -Werror -static -DVERSION="$KUBE_VERSION" -o "$assets/pause.tmp" "$src"
  strip "$assets/pause.tmp"
  mv "$assets/pause.tmp" "$assets/pause"
fi

if ! wanted helm; then
  :
elif [[ ! -x "$assets/helm" ]]; then
  log "helm: installing helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  started=$SECONDS
  GOBIN="$assets" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  log "helm: built in $((SECONDS - started)) s"
else
  log "helm: already built in $assets"
fi

if wanted kube-apiserver; then "$assets/kube-apiserver" --version >&2; fi
if wanted helm; then "$assets/helm" version --short >&2; fi
echo "$assets"
