#!/usr/bin/env bash
# Prints the paths of KEDA's ScaledObject and TriggerAuthentication CRDs, from KEDA's own
# release source on the Go module proxy (cached in the Go module cache after the first run),
# for the test control plane: rendered ScaledObjects are checked by the real API server.
#
# Usage: crds.sh   (KEDA_VERSION overrides the version the tests use)
set -euo pipefail
# shellcheck source=hack/keda/version.sh
source "$(dirname "${BASH_SOURCE[0]}")/version.sh"
dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json \
  "github.com/kedacore/keda/v2@${KEDA_VERSION}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
for kind in scaledobjects triggerauthentications; do
  echo "$dir/config/crd/bases/keda.sh_${kind}.yaml"
done
