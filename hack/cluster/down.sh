#!/usr/bin/env bash
# Tears down the one-node test cluster of up.sh, whatever state it is in (also a half-started
# one, or one whose tests failed): workloads, node components, containers, mounts, the network
# namespace (and with it cni0, the pods' veths and every iptables rule of kubelet and
# kube-proxy), the kubelet's cgroups, the machine-wide sysctls it set, the host paths it made,
# and the state directory. Safe to run twice.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/cluster/common.sh
source "$here/common.sh"
[[ -d $DIR ]] || exit 0
started=$SECONDS
[[ -f $DIR/netns ]] && NETNS=$(cat "$DIR/netns") && NETNS_PATH=/run/netns/$NETNS
assets=$(cat "$DIR/assets" 2>/dev/null || true)

alive() { [[ -f $DIR/pids/$1 ]] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }
stop() {  # stop NAME...: SIGTERM, up to 15 s, then SIGKILL
  local name pid
  for name in "$@"; do
    alive "$name" || continue
    pid=$(cat "$DIR/pids/$name")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null && log "$name killed"
    rm -f "$DIR/pids/$name"
  done
}

# 1. Workloads, while the kubelet still runs: it stops their containers and unmounts their
#    volumes itself. Bounded: whatever is left is killed below.
if alive kube-apiserver && alive kubelet && [[ -x $assets/kubectl ]]; then
  kc() { timeout 70 nsenter --net="$NETNS_PATH" -- "$assets/kubectl" --kubeconfig="$DIR/kubeconfig" "$@"; }
  kc delete pods --all-namespaces --all --grace-period=5 --wait=true --timeout=60s >/dev/null 2>&1 \
    || log "pods not all deleted in 60 s; killing their containers"
fi

# 2. Node components, then the containers containerd still runs, then the control plane.
stop keda-operator keda-adapter kube-proxy kubelet kube-scheduler kube-controller-manager coredns sqs
if alive containerd; then
  ctr=(ctr -a "$CONTAINERD_SOCK" -n k8s.io)
  for task in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
    "${ctr[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1
  done
  sleep 1
  for container in $("${ctr[@]}" containers ls -q 2>/dev/null); do
    "${ctr[@]}" tasks delete --force "$container" >/dev/null 2>&1
    "${ctr[@]}" containers delete "$container" >/dev/null 2>&1
  done
fi
stop containerd kube-apiserver etcd
# Shims that outlived containerd run in the node's namespace (step 4 ends them); the
# containers' processes are in the kubelet's cgroups, each of which holds only pods of ours.
for procs in /sys/fs/cgroup/*/kubepods/ /sys/fs/cgroup/kubepods/; do
  [[ -d $procs ]] || continue
  find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done

# 3. Mounts under the state directory (the kubelet's bind mount of its root, volumes, container
#    root file systems), deepest first.
mapfile -t mounts < <(awk -v dir="$DIR" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r)
for mount in "${mounts[@]}"; do
  umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || log "could not unmount $mount"
done
for mount in $(awk '$2 ~ "^/run/netns/cni-" {print $2}' /proc/self/mounts); do
  umount "$mount" 2>/dev/null && rm -f "$mount"
done

# 4. The network namespace: the bridge, veths and iptables rules inside it go with it.
if [[ -e $NETNS_PATH ]]; then
  ip netns pids "$NETNS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  sleep 0.5
  ip netns del "$NETNS" || log "could not delete network namespace $NETNS"
fi

# 5. The kubelet's cgroups (/kubepods in every v1 hierarchy, and in the unified one), leaves first.
for hierarchy in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ -d ${hierarchy}kubepods ]] || continue
  find "${hierarchy}kubepods" -depth -type d -exec rmdir {} + 2>/dev/null
  [[ -d ${hierarchy}kubepods ]] && log "could not remove ${hierarchy}kubepods"
done

# 6. Machine-wide settings and host paths.
if [[ -f $DIR/sysctls ]]; then
  while IFS= read -r setting; do
    sysctl -qw "$setting" || log "could not restore $setting"
  done <"$DIR/sysctls"
fi
if [[ -f $DIR/created-paths ]]; then
  while IFS= read -r path; do
    [[ -n $path ]] && rm -rf "$path"
  done <"$DIR/created-paths"
fi

rm -rf "$DIR"
log "torn down in $((SECONDS - started)) s"
