#!/usr/bin/env bash
# Installs what the one-node test cluster needs from Debian's packages, when missing: the
# container runtime (containerd, runc, the CNI plugins, iptables for kube-proxy) and the image
# tools (buildah, mmdebstrap). A machine that has them all installs nothing.
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables buildah mmdebstrap)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-packages.sh: missing ${missing[*]}; run as root (apt-get)" >&2
  exit 2
fi
echo "[cluster] installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts containerd as a system service on install; the test node runs its own (its
# state and socket under the cluster's directory), so the system one is not needed.
if command -v systemctl >/dev/null && systemctl is-active --quiet containerd 2>/dev/null; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi
