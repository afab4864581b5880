#!/usr/bin/env bash
# Builds KEDA's operator and metrics adapter (the release of version.sh) from the Go module
# proxy, for the one-node test cluster (hack/cluster/up.sh runs them as node processes), into
# a cache directory keyed by version:
#   ${TASKQUEUE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskqueue}/keda/<version>/
#     keda-operator, keda-adapter    the binaries (static, stripped)
#     config/                        KEDA's CRDs and RBAC manifests from the same release source
# Skipped when they are there, so a warm run takes a second; one build at a time per directory
# (flock): .ci/run starts one in the background and up.sh's call then waits for it.
# Prints the directory on its last line.
#
# The build is one `go build` of both commands from a small wrapper module made here: it
# requires KEDA's module and carries the replace and exclude lines of KEDA's own go.mod (those
# apply only in the main module, and the build list is KEDA's own without them). Measured on
# 2 cores: ~7.5 min cold (~320 MB of module zips, ~3.3 GB of build cache), ~40 s with the
# dependencies' build cache warm.
#
# Usage: build.sh   (KEDA_VERSION overrides the release)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/keda/version.sh
source "$here/version.sh"
MODULE=github.com/kedacore/keda/v2

cache_root="${TASKQUEUE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskqueue}"
out="$cache_root/keda/$KEDA_VERSION"
mkdir -p "$out"
exec 9>"$out/.build.lock"
flock 9

log() { printf '[keda] %s\n' "$*" >&2; }

if [[ -x $out/keda-operator && -x $out/keda-adapter && -d $out/config ]]; then
  log "operator and adapter $KEDA_VERSION: already built in $out"
  echo "$out"
  exit 0
fi

started=$SECONDS
log "building KEDA $KEDA_VERSION's operator and adapter (first build takes several minutes)"
# KEDA's release source (its go.mod, CRDs and RBAC), from the module proxy.
src="$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "$MODULE@$KEDA_VERSION" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"

work="$out/wrapper"
rm -rf "$work"
mkdir -p "$work"
go_version="$(go mod edit -json "$src/go.mod" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Go"])')"
cat >"$work/go.mod" <<EOF
module taskqueue.dev/hack/keda/build

go $go_version

require $MODULE $KEDA_VERSION
EOF
cat >"$work/tools.go" <<EOF
//go:build tools

package tools

import (
	_ "$MODULE/cmd/adapter"
	_ "$MODULE/cmd/operator"
)
EOF
# KEDA's replace and exclude directives, as `go mod edit` flags.
mapfile -t directives < <(go mod edit -json "$src/go.mod" | python3 -c '
import json, sys
mod = json.load(sys.stdin)
def at(m):
    return m["Path"] + ("@" + m["Version"] if m.get("Version") else "")
for r in mod.get("Replace") or []:
    print("-replace=" + at(r["Old"]) + "=" + at(r["New"]))
for e in mod.get("Exclude") or []:
    print("-exclude=" + at(e))
')
if ((${#directives[@]})); then
  (cd "$work" && go mod edit "${directives[@]}")
fi
(cd "$work" && GOFLAGS=-mod=mod go mod tidy)
log "wrapper module ready in $((SECONDS - started)) s; compiling"

rm -rf "$work/bin"
mkdir -p "$work/bin"
(cd "$work" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X $MODULE/version.Version=${KEDA_VERSION#v}" \
  -o "$work/bin/" "$MODULE/cmd/operator" "$MODULE/cmd/adapter")

rm -rf "$out/config.tmp"
mkdir -p "$out/config.tmp"
cp "$src"/config/crd/bases/*.yaml "$out/config.tmp/"
cp "$src/config/rbac/role.yaml" "$out/config.tmp/operator-role.yaml"
cp "$src/config/rbac/role_binding.yaml" "$out/config.tmp/operator-role-binding.yaml"
cp "$src/config/metrics-server/role.yaml" "$out/config.tmp/metrics-server-role.yaml"
cp "$src/config/metrics-server/role_binding.yaml" "$out/config.tmp/metrics-server-role-binding.yaml"
cp "$src/config/service_account/service_account.yaml" "$out/config.tmp/service-account.yaml"
chmod -R u+w "$out/config.tmp"
rm -rf "$out/config"
mv "$out/config.tmp" "$out/config"
mv "$work/bin/operator" "$out/keda-operator"
mv "$work/bin/adapter" "$out/keda-adapter"
rm -rf "$work"
log "operator and adapter built in $((SECONDS - started)) s"
echo "$out"
