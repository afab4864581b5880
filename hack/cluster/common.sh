# Shared by up.sh and down.sh: names, addresses and small helpers of the one-node test cluster.
# shellcheck shell=bash

DIR="${TASKQUEUE_CLUSTER_DIR:-/tmp/taskqueue-cluster}"
NETNS="${TASKQUEUE_NETNS:-taskqueue}"
NETNS_PATH="/run/netns/$NETNS"
NODE_NAME=taskqueue-node
NODE_IP=10.200.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SERVICE_IP=10.96.0.1
SQS_PORT=5000
# KEDA (hack/keda/build.sh) as node processes: the metrics adapter serves the aggregated
# external.metrics.k8s.io API on the node IP; the operator's gRPC metrics service (which the
# adapter asks), its metrics and health probes listen on the namespace's loopback.
KEDA_NAMESPACE=keda
KEDA_ADAPTER_PORT=6444
KEDA_GRPC_ADDRESS=127.0.0.1:9666
KEDA_OPERATOR_PROBE_ADDRESS=127.0.0.1:18081
CONTAINERD_SOCK="$DIR/run/containerd.sock"

# The sysctls the kubelet sets machine-wide on every start (they are not per namespace):
# recorded before it starts and restored by down.sh. While they are in force a kernel oops
# reboots the machine.
KUBELET_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
# Paths the kubelet and containerd create on the host whatever their root directories say;
# down.sh removes those that up.sh did not find already there.
KUBELET_HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni
  /etc/cni /run/containerd /opt/containerd)

log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

in_ns() { nsenter --net="$NETNS_PATH" -- "$@"; }

spawn() {  # spawn NAME COMMAND...: start a node component in the namespace, detached
  local name=$1
  shift
  log "starting $name"
  # setsid + closed stdin: the component outlives this script and holds none of its caller's
  # pipes (a test runner waiting for up.sh's output would otherwise wait for the node).
  setsid nsenter --net="$NETNS_PATH" -- "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: poll COMMAND until it succeeds
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after $seconds s waiting for $what"
      return 1
    fi
    local pidfile
    for pidfile in "$DIR"/pids/*; do
      [[ -e $pidfile ]] || continue
      if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "$(basename "$pidfile") exited while waiting for $what"
        return 1
      fi
    done
    sleep 0.5
  done
}

tail_logs() {
  local file
  for file in "$DIR"/logs/*.log; do
    [[ -s $file ]] || continue
    printf -- '--- %s (last lines)\n' "$(basename "$file")" >&2
    tail -n 15 "$file" >&2
  done
}
