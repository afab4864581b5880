# The KEDA release the tests use (hack/keda/crds.sh: its CRDs for the test control plane;
# hack/keda/build.sh: its operator and metrics adapter for the one-node cluster).
# shellcheck shell=bash
KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
