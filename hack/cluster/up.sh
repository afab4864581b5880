#!/usr/bin/env bash
# Brings up a one-node Kubernetes cluster for the end-to-end tests (tests/cluster/), entirely
# inside a network namespace of its own: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd, kubelet, kube-proxy, CoreDNS, an SQS server (moto) and KEDA's
# operator and metrics adapter all run with `nsenter --net`, the pods sit on a bridge inside
# that namespace, and nothing listens on or talks to an address of the host's namespace.
# Reach the cluster from the host with
# `nsenter --net=/run/netns/$NETNS kubectl --kubeconfig $DIR/kubeconfig ...` (see env.sh).
#
#   node IP 10.200.0.1 (a veth inside the namespace)  API server :6443, SQS :5000, kubelet :10250,
#                                                      KEDA's metrics adapter :6444 (aggregated API)
#   pods    10.244.0.0/24 on cni0 (bridge CNI)         Services 10.96.0.0/24 (kube-proxy, iptables)
#
# Usage: up.sh [IMAGE_ARCHIVE...]    OCI archives to import into containerd (hack/cluster/images.sh)
# Environment: TASKQUEUE_CLUSTER_DIR (state, default /tmp/taskqueue-cluster), TASKQUEUE_NETNS
# (default taskqueue), KUBEBUILDER_ASSETS (binaries; default: hack/envtest/build.sh's cache),
# TASKQUEUE_KEDA_DIR (KEDA's binaries and manifests; default: hack/keda/build.sh's cache).
# Needs root (namespaces, cgroups, mounts) and Debian's containerd, runc,
# containernetworking-plugins and iptables (hack/cluster/install-packages.sh).
# A failure anywhere runs down.sh, so a half-started node leaves nothing behind; so does down.sh
# at any later time. Writes $DIR/env.sh (the variables the tests read) when the node is Ready.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/cluster/common.sh
source "$here/common.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "up.sh: needs root (network namespace, cgroups, mounts)" >&2
  exit 2
fi
for tool in containerd containerd-shim-runc-v2 runc ctr iptables ip nsenter openssl; do
  command -v "$tool" >/dev/null || {
    echo "up.sh: $tool missing: run hack/cluster/install-packages.sh" >&2
    exit 2
  }
done
[[ -x /usr/lib/cni/bridge ]] || {
  echo "up.sh: /usr/lib/cni/bridge missing: run hack/cluster/install-packages.sh" >&2
  exit 2
}

if [[ -e $DIR/state ]]; then
  for pidfile in "$DIR"/pids/*; do
    if [[ -e $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      # Another run's node (its tests may be under way): never pull it from under them.
      echo "up.sh: a cluster is running in $DIR ($(basename "$pidfile") is alive); remove it" \
        "with hack/cluster/down.sh, or set TASKQUEUE_CLUSTER_DIR and TASKQUEUE_NETNS" >&2
      exit 3
    fi
  done
  log "a previous cluster's state is in $DIR, none of it running: tearing it down first"
  "$here/down.sh"
fi
if [[ -e /run/netns/$NETNS ]]; then
  echo "up.sh: network namespace $NETNS exists and is not this directory's; set TASKQUEUE_NETNS" >&2
  exit 3
fi
mkdir -p "$DIR"/{logs,pids,pki,etc,kubelet,containerd,run}
echo up >"$DIR/state"
trap 'status=$?; if [[ $status -ne 0 ]]; then log "failed (exit $status): tearing down"; tail_logs; "$here/down.sh"; fi' EXIT

assets="${KUBEBUILDER_ASSETS:-$("$repo/hack/envtest/build.sh" etcd kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy pause coredns | tail -n 1)}"
echo "$assets" >"$DIR/assets"
# KEDA's operator and metrics adapter (built once per version; waits for a build under way).
keda="${TASKQUEUE_KEDA_DIR:-$("$repo/hack/keda/build.sh" | tail -n 1)}"
started=$SECONDS

# -- what the kubelet changes globally, recorded before it starts (down.sh restores it) -----
for key in "${KUBELET_SYSCTLS[@]}"; do
  printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
done >"$DIR/sysctls"
for path in "${KUBELET_HOST_PATHS[@]}"; do
  [[ -e $path ]] || echo "$path"
done >"$DIR/created-paths"

# -- the network namespace: a node IP on a veth whose both ends are inside it --------------
ip netns add "$NETNS"
echo "$NETNS" >"$DIR/netns"
in_ns ip link set lo up
in_ns ip link add tq-node type veth peer name tq-peer
in_ns ip addr add "$NODE_IP/24" dev tq-node
in_ns ip link set tq-node up
in_ns ip link set tq-peer up
# A default route, so that Service IPs (which no interface has) are routable before
# kube-proxy's DNAT; it leads only to the veth's other end, so nothing leaves the namespace.
in_ns ip route add default dev tq-node
in_ns sysctl -qw net.ipv4.ip_forward=1

# -- credentials: one CA for the API server, its kubelet client and the kubeconfigs ----------
pki=$DIR/pki
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=taskqueue-test-ca \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
issue() {  # issue NAME SUBJECT [SAN]
  local name=$1 subject=$2 san=${3:-}
  openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$pki/$name.key" \
    -out "$pki/$name.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\n%s\n' "${san:+subjectAltName=$san}" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}
issue apiserver /CN=kube-apiserver \
  "IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
# The API server's client certificate for the kubelet (logs, exec): system:masters passes
# the kubelet's webhook authorization.
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
# The aggregation layer: the API server proxies external.metrics.k8s.io to KEDA's metrics
# adapter with this client certificate and the user in X-Remote-* headers, which the adapter
# trusts for this CA and name only (the requestheader flags below, published to it in
# kube-system/extension-apiserver-authentication).
issue front-proxy-client /CN=front-proxy-client
# KEDA: the adapter's serving certificate (the API server checks it for the APIService's
# Service name), also the operator's and adapter's mutual TLS on their gRPC metrics service.
issue keda /CN=keda-operator \
  "DNS:keda-metrics-apiserver.$KEDA_NAMESPACE.svc,DNS:keda-metrics-apiserver.$KEDA_NAMESPACE.svc.cluster.local,DNS:keda-operator.$KEDA_NAMESPACE.svc,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

token() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
declare -A tokens=(
  [admin]=$(token) [node]=$(token) [controller-manager]=$(token) [scheduler]=$(token)
  [proxy]=$(token) [dns]=$(token)
)
{
  echo "${tokens[admin]},admin,1,\"system:masters\""
  echo "${tokens[node]},system:node:$NODE_NAME,2,\"system:nodes\""
  echo "${tokens[controller-manager]},system:kube-controller-manager,3"
  echo "${tokens[scheduler]},system:kube-scheduler,4"
  echo "${tokens[proxy]},system:kube-proxy,5"
  echo "${tokens[dns]},system:coredns,6"
} >"$pki/tokens.csv"
chmod 600 "$pki"/*
kubeconfig() {  # kubeconfig FILE USER TOKEN SERVER
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: taskqueue, cluster: {server: "$4", certificate-authority: "$pki/ca.crt"}}]
users: [{name: "$2", user: {token: "$3"}}]
contexts: [{name: taskqueue, context: {cluster: taskqueue, user: "$2"}}]
current-context: taskqueue
EOF
  chmod 600 "$1"
}
kubeconfig "$DIR/kubeconfig" admin "${tokens[admin]}" "https://127.0.0.1:6443"
kubeconfig "$DIR/etc/node.kubeconfig" "system:node:$NODE_NAME" "${tokens[node]}" "https://127.0.0.1:6443"
kubeconfig "$DIR/etc/kcm.kubeconfig" system:kube-controller-manager "${tokens[controller-manager]}" "https://127.0.0.1:6443"
kubeconfig "$DIR/etc/scheduler.kubeconfig" system:kube-scheduler "${tokens[scheduler]}" "https://127.0.0.1:6443"
kubeconfig "$DIR/etc/proxy.kubeconfig" system:kube-proxy "${tokens[proxy]}" "https://127.0.0.1:6443"
kubeconfig "$DIR/etc/dns.kubeconfig" system:coredns "${tokens[dns]}" "https://127.0.0.1:6443"

# -- control plane ------------------------------------------------------------------------
spawn etcd "$assets/etcd" --data-dir="$DIR/etcd" \
  --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=default=http://127.0.0.1:2380 --listen-metrics-urls= \
  --unsafe-no-fsync --log-level=warn

spawn kube-apiserver "$assets/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --secure-port=6443 --bind-address=0.0.0.0 --advertise-address="$NODE_IP" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement \
  --enable-aggregator-routing=true \
  --requestheader-client-ca-file="$pki/ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$pki/front-proxy-client.crt" \
  --proxy-client-key-file="$pki/front-proxy-client.key" \
  --allow-privileged=true \
  --v=0
wait_for "API server" 60 in_ns curl -sf --cacert "$pki/ca.crt" \
  -H "Authorization: Bearer ${tokens[admin]}" https://127.0.0.1:6443/readyz

# nodeipam, service (cloud load balancers), route and cloud-node-lifecycle need a cloud or a
# pod CIDR allocator; node-lifecycle stays: it lifts the not-ready taint of a Ready node.
# The HorizontalPodAutoscalers (KEDA's) are evaluated every 5 s rather than 15 s, so that
# tests/cluster/test_autoscaling.py's burst sees pods added within seconds.
spawn kube-controller-manager "$assets/kube-controller-manager" \
  --kubeconfig="$DIR/etc/kcm.kubeconfig" \
  --authentication-kubeconfig="$DIR/etc/kcm.kubeconfig" \
  --authorization-kubeconfig="$DIR/etc/kcm.kubeconfig" \
  --bind-address=127.0.0.1 \
  --controllers='*,-nodeipam,-cloud-node-lifecycle,-service,-route' \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=true \
  --leader-elect=false \
  --flex-volume-plugin-dir="$DIR/kcm-flexvolume" \
  --horizontal-pod-autoscaler-sync-period=5s \
  --v=0
spawn kube-scheduler "$assets/kube-scheduler" \
  --kubeconfig="$DIR/etc/scheduler.kubeconfig" \
  --authentication-kubeconfig="$DIR/etc/scheduler.kubeconfig" \
  --authorization-kubeconfig="$DIR/etc/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --v=0

# -- container runtime ----------------------------------------------------------------------
mkdir -p "$DIR/cni/net.d" "$DIR/cni/ipam"
cat >"$DIR/cni/net.d/10-taskqueue.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "taskqueue",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
cat >"$DIR/etc/containerd.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
# Storage plugins this node does not use: they only log errors on this file system.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # The VM has no CAP_SYS_RESOURCE: runc could not raise oom_score_adj and would fail every
  # sandbox with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$DIR/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
spawn containerd containerd --config "$DIR/etc/containerd.toml"
wait_for containerd 30 ctr -a "$CONTAINERD_SOCK" version
for archive in "$@"; do
  log "importing $(basename "$archive")"
  ctr -a "$CONTAINERD_SOCK" -n k8s.io images import "$archive" >/dev/null
done

# -- kubelet and kube-proxy ---------------------------------------------------------------
cat >"$DIR/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupsPerQOS: true
# This VM has cgroup v1 only; v1.34 refuses it unless told (a warning remains).
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
podLogsDir: "$DIR/pod-logs"
volumePluginDir: "$DIR/kubelet-plugins"
# The cluster DNS below; the host's resolv.conf is not given to pods (nothing outside).
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: ""
# The shared disk of the machine, not the node's, decides these: never evict test pods.
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Images come from containerd's store only: never pulled, so never garbage collected.
serializeImagePulls: false
maxPods: 60
EOF
spawn kubelet "$assets/kubelet" --config="$DIR/etc/kubelet.yaml" \
  --kubeconfig="$DIR/etc/node.kubeconfig" \
  --root-dir="$DIR/kubelet" --cert-dir="$DIR/kubelet-pki" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=0

cat >"$DIR/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$DIR/etc/proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# 0: leave the machine-wide conntrack table size and timeouts alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
spawn kube-proxy "$assets/kube-proxy" --config="$DIR/etc/kube-proxy.yaml" --v=0

# -- cluster DNS on the node IP, as a node process: Service names resolve in pods as on any
# cluster (kopf's in-cluster login connects to kubernetes.default.svc by name). Only
# cluster.local is served; there is no upstream, so no query leaves the namespace.
kc() { in_ns "$assets/kubectl" --kubeconfig="$DIR/kubeconfig" "$@"; }
kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
  - {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
EOF
cat >"$DIR/etc/Corefile" <<EOF
cluster.local:53 {
    errors
    kubernetes cluster.local {
        kubeconfig $DIR/etc/dns.kubeconfig taskqueue
    }
}
EOF
spawn coredns "$assets/coredns" -conf "$DIR/etc/Corefile"

# -- the SQS server the pods use, on the node IP ------------------------------------------
spawn sqs "$repo/.venv/bin/moto_server" -H "$NODE_IP" -p "$SQS_PORT"

# -- KEDA (queue-driven autoscaling): its CRDs, its own RBAC, the operator and the metrics
# adapter as node processes under KEDA's ServiceAccount, the adapter behind an APIService ----
# Server-side: the ScaledJob CRD is too large for client-side apply's last-applied annotation.
kc apply --server-side --force-conflicts -f "$keda/config/keda.sh_scaledobjects.yaml" \
  -f "$keda/config/keda.sh_scaledjobs.yaml" -f "$keda/config/keda.sh_triggerauthentications.yaml" \
  -f "$keda/config/keda.sh_clustertriggerauthentications.yaml" \
  -f "$keda/config/eventing.keda.sh_cloudeventsources.yaml" \
  -f "$keda/config/eventing.keda.sh_clustercloudeventsources.yaml" >/dev/null
kc create namespace "$KEDA_NAMESPACE" >/dev/null
# KEDA's ServiceAccount, ClusterRole/Role and bindings as its release ships them (config/),
# also the HPA controller's right to read external metrics (metrics-server-role*.yaml).
kc apply -f "$keda/config/service-account.yaml" -f "$keda/config/operator-role.yaml" \
  -f "$keda/config/operator-role-binding.yaml" -f "$keda/config/metrics-server-role.yaml" \
  -f "$keda/config/metrics-server-role-binding.yaml" >/dev/null
kc apply -f - >/dev/null <<EOF
# No selector: the adapter is a node process, its one endpoint the node IP (the API server
# routes to endpoints itself: --enable-aggregator-routing).
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: $KEDA_NAMESPACE}
spec: {ports: [{name: https, port: 443, targetPort: $KEDA_ADAPTER_PORT}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver-node
  namespace: $KEDA_NAMESPACE
  labels: {kubernetes.io/service-name: keda-metrics-apiserver}
addressType: IPv4
ports: [{name: https, port: $KEDA_ADAPTER_PORT, protocol: TCP}]
endpoints: [{addresses: ["$NODE_IP"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  service: {name: keda-metrics-apiserver, namespace: $KEDA_NAMESPACE, port: 443}
  group: external.metrics.k8s.io
  version: v1beta1
  caBundle: $(base64 -w0 "$pki/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
kubeconfig "$DIR/etc/keda.kubeconfig" keda-operator \
  "$(kc create token keda-operator -n "$KEDA_NAMESPACE" --duration=48h)" "https://127.0.0.1:6443"
mkdir -p "$DIR/keda"
cp "$pki/keda.crt" "$DIR/keda/tls.crt"
cp "$pki/keda.key" "$DIR/keda/tls.key"
cp "$pki/ca.crt" "$DIR/keda/ca.crt"
keda_env=(env KUBECONFIG="$DIR/etc/keda.kubeconfig" WATCH_NAMESPACE= POD_NAMESPACE="$KEDA_NAMESPACE"
  KEDA_CLUSTER_OBJECT_NAMESPACE="$KEDA_NAMESPACE")
# No certificate rotation or patching (up.sh issued the certificates and wrote the APIService),
# no admission webhooks (a separate KEDA binary, not needed here).
spawn keda-operator "${keda_env[@]}" "$keda/keda-operator" \
  --cert-dir="$DIR/keda" --enable-cert-rotation=false \
  --enable-webhook-patching=false --enable-apiservice-patching=false \
  --metrics-bind-address=127.0.0.1:18080 --health-probe-bind-address="$KEDA_OPERATOR_PROBE_ADDRESS" \
  --metrics-service-bind-address="$KEDA_GRPC_ADDRESS" --ca-dir="$DIR/keda" \
  --zap-encoder=console --zap-log-level=info
spawn keda-adapter "${keda_env[@]}" "$keda/keda-adapter" \
  --lister-kubeconfig="$DIR/etc/keda.kubeconfig" \
  --authentication-kubeconfig="$DIR/etc/keda.kubeconfig" \
  --authorization-kubeconfig="$DIR/etc/keda.kubeconfig" \
  --bind-address="$NODE_IP" --secure-port="$KEDA_ADAPTER_PORT" --cert-dir="$DIR/keda" \
  --tls-cert-file="$DIR/keda/tls.crt" --tls-private-key-file="$DIR/keda/tls.key" \
  --metrics-service-address="$KEDA_GRPC_ADDRESS" --port=18082 \
  --zap-encoder=console --zap-log-level=info

# -- ready: node Ready and schedulable, the default ServiceAccount, the kubernetes Service ---
wait_for "node $NODE_NAME registered" 60 kc get node "$NODE_NAME"
kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=90s >/dev/null
untainted() { [[ -z "$(kc get node "$NODE_NAME" -o jsonpath='{.spec.taints}')" ]]; }
wait_for "node $NODE_NAME untainted" 60 untainted
wait_for "default ServiceAccount" 60 kc get serviceaccount default
wait_for "kube-proxy's rule for the kubernetes Service" 60 \
  in_ns sh -c "iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q $KUBERNETES_SERVICE_IP/32"
wait_for "cluster DNS" 30 grep -q "^CoreDNS-" "$DIR/logs/coredns.log"
wait_for "SQS server" 30 in_ns curl -s -o /dev/null "http://$NODE_IP:$SQS_PORT/"
wait_for "KEDA's operator" 60 in_ns curl -sf "http://$KEDA_OPERATOR_PROBE_ADDRESS/readyz"
apiservice_available() {
  [[ "$(kc get apiservice v1beta1.external.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}')" == True ]]
}
wait_for "KEDA's external metrics API" 60 apiservice_available

cat >"$DIR/env.sh" <<EOF
# The one-node test cluster (hack/cluster/up.sh). Run clients with: nsenter --net=$NETNS_PATH
TASKQUEUE_CLUSTER_DIR=$DIR
TASKQUEUE_NETNS=$NETNS
TASKQUEUE_NETNS_PATH=$NETNS_PATH
TASKQUEUE_KUBECONFIG=$DIR/kubeconfig
TASKQUEUE_ASSETS=$assets
TASKQUEUE_NODE_IP=$NODE_IP
TASKQUEUE_SQS_ENDPOINT=http://$NODE_IP:$SQS_PORT
TASKQUEUE_CONTAINERD_SOCK=$CONTAINERD_SOCK
TASKQUEUE_KEDA_NAMESPACE=$KEDA_NAMESPACE
EOF
echo ready >"$DIR/state"
log "node $NODE_NAME Ready in $((SECONDS - started)) s (state: $DIR)"
