"""Queue-driven autoscaling on a real node (#18): the chart's operator gives a processor with
`autoscaling.queueLength` and `minReplicas: 0` a KEDA ScaledObject and TriggerAuthentication;
KEDA (its operator and metrics adapter, hack/cluster/up.sh) scales the processor from zero to
several pods for a burst of messages and back to zero once the queue is empty, and every
message is processed with none dead-lettered on the way in or out.

Self-contained: the module installs the chart's operator (the story's release name, so the CRDs
it keeps on uninstall are the story's to adopt) for a tenant namespace of its own, and removes
it all again, so it runs before, after or without tests/cluster/test_user_story.py.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import CHART, REGION, REPO, Cluster, ClusterError, wait_until

pytestmark = pytest.mark.timeout(600)

RELEASE = "taskqueue"
OPERATOR_NAMESPACE = "taskqueue-system"
OPERATOR_VALUES = REPO / "hack" / "cluster" / "operator-values.yaml"
OPERATOR_SELECTOR = "app.kubernetes.io/name=kube-taskqueue-operator"
NAMESPACE = "autoscale"
TASKQUEUE = "burst"
PROCESSOR = "worker"
DEPLOYMENT = f"{TASKQUEUE}-{PROCESSOR}"
PODS = f"taskqueue.dev/taskqueue={TASKQUEUE},taskqueue.dev/processor={PROCESSOR}"
#: Under the default policy's "e2e-" of hack/cluster/operator-values.yaml; a run's own, so a
#: rerun on a node left up never meets a queue of an earlier run (not adopted: QueueNotOwned).
PREFIX = f"e2e-scale-{uuid.uuid4().hex[:6]}-"
APP = "taskqueue_example.tasks:provider"

MAX_REPLICAS = 3
QUEUE_LENGTH = 4
POLLING_INTERVAL = 5
COOLDOWN = 20
#: The burst: MESSAGES tasks of TASK_SECONDS each, WORKERS at a time per pod: 36 s for one
#: pod, long enough for the HorizontalPodAutoscaler (5 s sync on this node) to add pods.
MESSAGES = 36
TASK_SECONDS = 2
WORKERS = 2


def _exists(cluster: Cluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode == 0


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[None]:
    """The chart's operator, serving only this module's namespace; uninstalled at the end with
    whatever this module created (the story installs its own)."""
    if not _exists(cluster, "crd", "scaledobjects.keda.sh"):
        pytest.skip("KEDA is not installed in this cluster (hack/cluster/up.sh installs it)")
    if cluster.helm("status", RELEASE, "-n", OPERATOR_NAMESPACE, check=False).returncode == 0:
        pytest.skip(f"release {RELEASE} is installed already (the story's): not touching it")
    created = [ns for ns in (NAMESPACE, OPERATOR_NAMESPACE) if not _exists(cluster, "ns", ns)]
    try:
        # The tenant namespace exists first: the chart binds the operator's tenant role in it.
        if NAMESPACE in created:
            cluster.kubectl("create", "namespace", NAMESPACE)
        repository, _, tag = cluster.images.operator.rpartition(":")
        cluster.helm(
            "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
            "--create-namespace", "-f", str(OPERATOR_VALUES),
            "--set-json", f'tenancy.namespaces=["{NAMESPACE}"]',
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", f"sqs.region={REGION}", "--wait", "--timeout=240s",
            timeout=300,
        )  # fmt: skip
        yield
    finally:
        # The TaskQueue while its operator still runs (its finalizer), then the release, then
        # the namespaces this module made, so the story finds the cluster as it would without.
        cluster.kubectl(
            "delete", "taskqueue", "-n", NAMESPACE, TASKQUEUE, "--ignore-not-found",
            "--timeout=120s", check=False, timeout=130,
        )  # fmt: skip
        cluster.helm(
            "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait", "--timeout=120s",
            check=False, timeout=130,
        )  # fmt: skip
        for namespace in created:
            cluster.kubectl(
                "delete", "namespace", namespace, "--timeout=120s", check=False, timeout=130
            )


def taskqueue(cluster: Cluster, results_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueue",
        "metadata": {"name": TASKQUEUE, "namespace": NAMESPACE},
        "spec": {
            "image": cluster.images.app,
            "app": APP,
            "sqs": {
                "region": REGION,
                "endpoint": cluster.sqs_endpoint,
                "queuePrefix": PREFIX,
                "credentialsSecret": "sqs-credentials",
            },
            # The queues go with the TaskQueue: nothing of this module stays behind.
            "deletionPolicy": "Delete",
            "queues": [
                {
                    "name": "work",
                    "pollInterval": 1,
                    "messageVisibilityTimeout": 20,
                    "deadLetter": {"maxReceiveCount": 3},
                }
            ],
            "tasks": [{"name": "echo:job", "queue": "work"}],
            "processors": [
                {
                    "name": PROCESSOR,
                    "tasks": ["echo:job"],
                    "workers": WORKERS,
                    "env": [{"name": "RESULTS_QUEUE_URL", "value": results_url}],
                    "autoscaling": {
                        "minReplicas": 0,
                        "maxReplicas": MAX_REPLICAS,
                        "queueLength": QUEUE_LENGTH,
                        "pollingInterval": POLLING_INTERVAL,
                        "cooldownPeriod": COOLDOWN,
                        "scaleDownStabilizationSeconds": 5,
                    },
                }
            ],
        },
    }


def processor_pods(cluster: Cluster) -> list[dict[str, Any]]:
    """The processor's pods that are not being deleted."""
    return [
        pod
        for pod in cluster.get("pods", "-n", NAMESPACE, "-l", PODS)["items"]
        if pod["metadata"].get("deletionTimestamp") is None
    ]


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def replicas(cluster: Cluster) -> int:
    return int(cluster.get("deployment", "-n", NAMESPACE, DEPLOYMENT)["spec"].get("replicas", 1))


def queue_counts(sqs: Any, name: str) -> tuple[int, int]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def drain(sqs: Any, url: str, seen: list[dict[str, Any]]) -> set[str]:
    """Read every result the tasks reported so far into `seen`; the ids seen."""
    while True:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = answer.get("Messages", [])
        if not messages:
            return {result["id"] for result in seen}
        seen.extend(json.loads(message["Body"]) for message in messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


class PodWatch(threading.Thread):
    """Samples the processor's pods once a second: the most Ready at once, every pod name."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self._cluster = cluster
        self.stop = threading.Event()
        self.most_ready = 0
        self.names: set[str] = set()
        self.samples: list[tuple[float, int, int]] = []  # (time, pods, ready)

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            try:
                pods = processor_pods(self._cluster)
            except (ClusterError, OSError, ValueError):
                pods = None
            if pods is not None:
                ready = sum(1 for pod in pods if is_ready(pod))
                self.most_ready = max(self.most_ready, ready)
                self.names.update(pod["metadata"]["name"] for pod in pods)
                self.samples.append((round(time.monotonic() - started, 1), len(pods), ready))
            self.stop.wait(1)


def _diagnostics(cluster: Cluster) -> str:
    parts = []
    for args in (
        ("get", "scaledobject,hpa,deployment,pods", "-n", NAMESPACE, "-o", "wide"),
        ("describe", "scaledobject", "-n", NAMESPACE),
        ("describe", "hpa", "-n", NAMESPACE),
        ("get", "taskqueue", "-n", NAMESPACE, TASKQUEUE, "-o", "yaml"),
        ("logs", "-n", OPERATOR_NAMESPACE, "-l", OPERATOR_SELECTOR, "--tail=80"),
    ):
        result = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
    for component in ("keda-operator", "keda-adapter", "kube-controller-manager"):
        log = cluster.node_log(component)
        if log:
            parts.append(f"--- {component} (last lines)\n{log}")
    return "\n".join(parts)


def test_a_burst_scales_the_processor_from_zero_to_several_pods_and_back(
    cluster: Cluster, sqs: Any, operator: None
) -> None:
    started = time.monotonic()
    watch = PodWatch(cluster)
    try:
        _burst_scales_out_and_in(cluster, sqs, watch)
    except BaseException:
        sys.stderr.write(f"\n[autoscaling] pods over time (s, pods, ready): {watch.samples}\n")
        sys.stderr.write(_diagnostics(cluster) + "\n")
        raise
    finally:
        watch.stop.set()
        if watch.is_alive():
            watch.join(10)
        sys.stderr.write(
            f"\n[autoscaling] {time.monotonic() - started:.0f} s; most pods Ready at once: "
            f"{watch.most_ready}; pods: {len(watch.names)}\n"
        )


def _burst_scales_out_and_in(cluster: Cluster, sqs: Any, watch: PodWatch) -> None:
    results_url = str(sqs.create_queue(QueueName=f"{PREFIX}results")["QueueUrl"])
    if not _exists(cluster, "secret", "-n", NAMESPACE, "sqs-credentials"):
        cluster.kubectl(
            "create", "secret", "generic", "sqs-credentials", "-n", NAMESPACE,
            "--from-literal=AWS_ACCESS_KEY_ID=testing",
            "--from-literal=AWS_SECRET_ACCESS_KEY=testing",
        )  # fmt: skip
    cluster.apply(taskqueue(cluster, results_url))

    # The operator's KEDA objects: a ScaledObject on the real queue URL and endpoint, and the
    # TaskQueue's credentials Secret for KEDA to read the depth with.
    wait_until(
        f"ScaledObject {DEPLOYMENT}",
        lambda: _exists(cluster, "scaledobject", "-n", NAMESPACE, DEPLOYMENT),
        timeout=90,
    )
    queue_url = sqs.get_queue_url(QueueName=f"{PREFIX}work")["QueueUrl"]
    scaled = cluster.get("scaledobject", "-n", NAMESPACE, DEPLOYMENT)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == queue_url
    assert trigger["metadata"]["awsEndpoint"] == cluster.sqs_endpoint
    assert trigger["authenticationRef"] == {"name": f"{TASKQUEUE}-sqs"}
    assert scaled["spec"]["minReplicaCount"] == 0
    assert scaled["spec"]["maxReplicaCount"] == MAX_REPLICAS
    auth = cluster.get("triggerauthentication", "-n", NAMESPACE, f"{TASKQUEUE}-sqs")
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {"sqs-credentials"}

    def keda_ready() -> bool:
        document = cluster.get("scaledobject", "-n", NAMESPACE, DEPLOYMENT)
        conditions = document.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_until("KEDA to take the ScaledObject (Ready)", keda_ready, timeout=60)

    # An empty queue: KEDA takes the processor to zero (the Deployment starts with one).
    wait_until(
        "the processor at 0 pods before the burst",
        lambda: replicas(cluster) == 0 and not processor_pods(cluster),
        timeout=90,
    )
    hpa = cluster.get("hpa", "-n", NAMESPACE, f"keda-hpa-{DEPLOYMENT}")
    assert hpa["spec"]["maxReplicas"] == MAX_REPLICAS
    sys.stderr.write(f"\n[autoscaling] HPA behavior: {hpa['spec'].get('behavior')}\n")

    # The burst.
    watch.start()
    sent = {f"burst-{n}-{uuid.uuid4().hex[:6]}" for n in range(MESSAGES)}
    ids = sorted(sent)
    for first in range(0, len(ids), 10):
        answer = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": json.dumps({"id": message_id, "seconds": TASK_SECONDS}),
                    "MessageAttributes": {
                        "JobName": {"DataType": "String", "StringValue": "echo:job"}
                    },
                }
                for i, message_id in enumerate(ids[first : first + 10])
            ],
        )
        assert not answer.get("Failed"), answer
    burst_sent = time.monotonic()

    wait_until("the processor to scale up from 0", lambda: watch.most_ready >= 1, timeout=60)
    seen: list[dict[str, Any]] = []
    wait_until(
        "every message of the burst processed",
        lambda: sent <= drain(sqs, results_url, seen),
        timeout=150,
        interval=2,
    )
    processed_in = time.monotonic() - burst_sent
    assert watch.most_ready >= 2, (
        f"never more than {watch.most_ready} pod Ready for {MESSAGES} messages "
        f"(queueLength {QUEUE_LENGTH}): {watch.samples}"
    )
    pods_used = {result["pod"] for result in seen if result["id"] in sent}
    assert all(pod.startswith(f"{DEPLOYMENT}-") for pod in pods_used), pods_used

    # Back to zero after the cooldown, the running tasks finished and nothing dead-lettered.
    wait_until(
        "the processor back at 0 pods",
        lambda: replicas(cluster) == 0 and not processor_pods(cluster),
        timeout=COOLDOWN + 120,
        interval=2,
    )
    scaled_in = time.monotonic() - burst_sent
    watch.stop.set()
    watch.join(10)
    assert queue_counts(sqs, f"{PREFIX}work") == (0, 0)
    assert queue_counts(sqs, f"{PREFIX}work-dlq") == (0, 0), "messages dead-lettered"
    assert sent <= drain(sqs, results_url, seen)
    sqs.delete_queue(QueueUrl=results_url)
    sys.stderr.write(
        f"\n[autoscaling] {MESSAGES} messages processed {processed_in:.0f} s after the burst "
        f"by {len(pods_used)} pods (at most {watch.most_ready} Ready at once); back at 0 pods "
        f"{scaled_in:.0f} s after it; {len(seen) - len(sent)} results beyond one per message\n"
    )
