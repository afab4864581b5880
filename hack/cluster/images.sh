#!/usr/bin/env bash
# Builds the test cluster's container images without a daemon or a registry, and writes each
# as an OCI archive that hack/cluster/up.sh imports into the node's containerd:
#
#   localhost/taskqueue-python:3.11-bookworm   base: Debian bookworm's python3 (mmdebstrap),
#                                               the PYTHON_IMAGE of both Dockerfiles
#   localhost/kube-taskqueue-processor:TAG      processor/Dockerfile, unchanged
#   localhost/kube-taskqueue-operator:TAG       operator/Dockerfile, unchanged
#   localhost/taskqueue-example-app:TAG         examples/app/Dockerfile: FROM the processor
#                                               image, as docs/how-to/images.md tells app teams to build theirs
#   localhost/pause:3.10                        the pod sandbox (build.sh's static pause binary)
#
# The Dockerfiles are the ones users run `docker build` on: only their PYTHON_IMAGE build
# argument is pointed at the local base, so what runs in the cluster is what they build.
#
# Caches (TASKQUEUE_CACHE, default ~/.cache/taskqueue/cluster): the base root filesystem tarball,
# keyed by suite and package list; buildah's storage (overlay driver, 3x faster here than vfs),
# so an unchanged rebuild reuses its layers (`--layers`). Overlay mounts exist only while a
# build runs; any left by a killed build are unmounted when this script ends.
#
# Usage: images.sh OUT_DIR [TAG]    (TAG defaults to the chart's appVersion)
set -euo pipefail

out=${1:?usage: images.sh OUT_DIR [TAG]}
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tag=${2:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/kube-taskqueue-operator/Chart.yaml")}
mkdir -p "$out"
out="$(cd "$out" && pwd)"

cache_root="${TASKQUEUE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskqueue}"
cache="$cache_root/cluster"
mkdir -p "$cache"
exec 8>"$cache/.images.lock"
flock 8

log() { printf '[images] %s\n' "$*" >&2; }

storage_root="$cache/buildah-overlay"
storage=(--root "$storage_root/root" --runroot "$storage_root/run" --storage-driver overlay)

# buildah makes these on the host whatever its --root says (its blob cache, and the CNI
# directory its default network set-up expects): removed again when this script made them.
made=()
for path in /var/lib/containers /etc/cni; do
  [[ -e $path ]] || made+=("$path")
done
cleanup() {
  local mount
  awk -v dir="$storage_root/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount"; done
  for path in "${made[@]}"; do rm -rf "$path"; done
}
trap cleanup EXIT

SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python3-pip,ca-certificates
BASE_IMAGE=localhost/taskqueue-python:3.11-$SUITE
base_key=$(printf '%s %s v1' "$SUITE" "$BASE_PACKAGES" | sha256sum | cut -c1-12)
base_tar="$cache/base-$SUITE-$base_key.tar"

bh() { buildah "${storage[@]}" "$@"; }

if [[ ! -f $base_tar ]]; then
  # mmdebstrap picks its output format from the file name's extension: keep ".tar" last.
  rm -rf "$base_tar.partial.tar"
  log "base: mmdebstrap $SUITE with $BASE_PACKAGES (about a minute)"
  started=$SECONDS
  # Check-Valid-Until off: a snapshot mirror's Release file may be older than its validity.
  # EXTERNALLY-MANAGED removed: the Dockerfiles `pip install` into the system Python, as they
  # do on python:3.11-slim (which has no such marker either).
  mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$base_tar.partial.tar" \
    "deb http://deb.debian.org/debian $SUITE main" \
    "deb http://deb.debian.org/debian $SUITE-updates main" \
    "deb http://deb.debian.org/debian-security $SUITE-security main" >&2
  mv "$base_tar.partial.tar" "$base_tar"
  log "base: built in $((SECONDS - started)) s"
fi

# The base image in buildah's storage, made from the tarball once (its label names the key).
if [[ "$(bh inspect --type image --format '{{index .ImageAnnotations "taskqueue.dev/base-key"}}' "$BASE_IMAGE" 2>/dev/null)" != "$base_key" ]]; then
  log "base: importing $base_tar as $BASE_IMAGE"
  ctr=$(bh from scratch)
  bh add "$ctr" "$base_tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 --annotation "taskqueue.dev/base-key=$base_key" "$ctr"
  bh commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
fi

# pip inside a build sees none of the host's pip settings and not its CA bundle: mount the
# bundle for the RUN steps only (it is not part of any layer).
ca=/etc/ssl/certs/ca-certificates.crt
build() {  # build IMAGE DOCKERFILE CONTEXT [BUILD-ARG...]
  local image=$1 file=$2 context=$3
  shift 3
  local started=$SECONDS args=()
  for arg in "$@"; do args+=(--build-arg "$arg"); done
  log "$image: buildah bud -f ${file#"$repo"/}"
  # chroot isolation: the default OCI runtime refuses this machine's hybrid cgroup layout
  # ("cgroups in hybrid mode not supported"), and chroot leaves no network set-up behind.
  bh bud --quiet --isolation chroot --layers --pull=never -v "$ca:$ca:ro" \
    "${args[@]}" -f "$file" -t "$image" "$context" >/dev/null
  log "$image: built in $((SECONDS - started)) s"
}

processor=localhost/kube-taskqueue-processor:$tag
operator=localhost/kube-taskqueue-operator:$tag
example=localhost/taskqueue-example-app:$tag
build "$processor" "$repo/processor/Dockerfile" "$repo" "PYTHON_IMAGE=$BASE_IMAGE"
build "$operator" "$repo/operator/Dockerfile" "$repo" "PYTHON_IMAGE=$BASE_IMAGE"
build "$example" "$repo/examples/app/Dockerfile" "$repo/examples/app" "PROCESSOR_IMAGE=$processor"

# The pod sandbox: one static binary, run as nobody, as registry.k8s.io/pause is.
pause_bin="$("$repo/hack/envtest/build.sh" pause | tail -n 1)/pause"
pause=localhost/pause:3.10
if [[ "$(bh inspect --type image --format '{{index .ImageAnnotations "taskqueue.dev/pause"}}' "$pause" 2>/dev/null)" != "$(sha256sum <"$pause_bin" | cut -c1-12)" ]]; then
  ctr=$(bh from scratch)
  bh copy "$ctr" "$pause_bin" /pause >/dev/null
  bh config --entrypoint '["/pause"]' --user 65535:65535 \
    --annotation "taskqueue.dev/pause=$(sha256sum <"$pause_bin" | cut -c1-12)" "$ctr"
  bh commit --quiet --rm "$ctr" "$pause" >/dev/null
fi

for image in "$pause" "$processor" "$operator" "$example"; do
  name=${image#localhost/}
  file="$out/${name//[:\/]/_}.tar"
  id=$(bh inspect --type image --format '{{.FromImageID}}' "$image")
  # An archive of this very image is there already: an unchanged rebuild writes nothing.
  if [[ ! -f $file || "$(cat "$file.id" 2>/dev/null)" != "$id" ]]; then
    rm -f "$file" "$file.id"
    bh push --quiet "$image" "oci-archive:$file:$image" >/dev/null
    echo "$id" >"$file.id"
  fi
  echo "$file"
done
# No `buildah rmi --prune` here: the untagged intermediate images are the layer cache of the
# next build. The cache directory may be removed at any time (the next build is then cold).
