"""The user story on a real node: the chart's operator, an app's TaskQueue, its processor pods
processing messages, its CronJob, a GitOps edit, the webhook, deletion and uninstall.

The steps run in file order and build on each other (one cluster, one operator release, one
TaskQueue); with -x the first failure stops the story where it broke.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster import CHART, REGION, REPO, Cluster, ClusterError, wait_until

# A cold image build (base image, pip installs) happens in the first test's set-up.
pytestmark = pytest.mark.timeout(1800)

RELEASE = "taskqueue"
OPERATOR_NAMESPACE = "taskqueue-system"
APP_NAMESPACE = "shop"
#: The chart values of this cluster's operator: the tenancy the story's app needs.
OPERATOR_VALUES = REPO / "hack" / "cluster" / "operator-values.yaml"
TASKQUEUE = "shop"
PREFIX = "e2e-"
APP = "taskqueue_example.tasks:provider"
EXAMPLE_APP = REPO / "examples" / "app"
#: The chart's names for this release (templates/_helpers.tpl: release + chart name).
FULLNAME = f"{RELEASE}-kube-taskqueue-operator"


@pytest.fixture(scope="module")
def results_url(cluster: Cluster, sqs: Any) -> str:
    """The queue the example app's tasks report to (one message per processed message)."""
    return str(sqs.create_queue(QueueName=f"{PREFIX}results")["QueueUrl"])


class Results:
    """Everything the example tasks reported, read from the results queue."""

    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs, self._url = sqs, url
        self.seen: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        while True:
            answer = self._sqs.receive_message(
                QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = answer.get("Messages", [])
            if not messages:
                return self.seen
            for message in messages:
                self.seen.append(json.loads(message["Body"]))
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    def ids(self) -> set[str]:
        return {result["id"] for result in self.drain()}

    def wait_for(self, ids: set[str], timeout: float = 90) -> None:
        wait_until(
            f"results for {sorted(ids - self.ids())}", lambda: ids <= self.ids(), timeout=timeout
        )


@pytest.fixture(scope="module")
def results(sqs: Any, results_url: str) -> Results:
    return Results(sqs, results_url)


def taskqueue(cluster: Cluster, results_url: str, *, edited: bool = False) -> dict[str, Any]:
    """The app's TaskQueue; `edited` is the GitOps change of step 5."""
    env = [{"name": "RESULTS_QUEUE_URL", "value": results_url}]
    queue = {
        "pollInterval": 1,
        "messageVisibilityTimeout": 20,
        "deadLetter": {"maxReceiveCount": 3},
    }
    processors: list[dict[str, Any]] = [
        {"name": "front", "tasks": ["echo:job"], "replicas": 1, "workers": 4, "env": env},
        {
            "name": "back",
            "tasks": ["other:job", "tick:job"],
            "replicas": 1,
            "workers": 4,
            "env": env,
        },
    ]
    if edited:
        # Replicas up, other:job (its queue) moved from back to front, the image tag bumped.
        processors = [
            {**processors[0], "replicas": 2, "tasks": ["echo:job", "other:job"]},
            {**processors[1], "tasks": ["tick:job"]},
        ]
    return {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueue",
        "metadata": {"name": TASKQUEUE, "namespace": APP_NAMESPACE},
        "spec": {
            "image": cluster.images.app_next if edited else cluster.images.app,
            "app": APP,
            "sqs": {
                "region": REGION,
                "endpoint": cluster.sqs_endpoint,
                "queuePrefix": PREFIX,
                "credentialsSecret": "sqs-credentials",
            },
            "queues": [{"name": name, **queue} for name in ("work", "other", "ticks")],
            "tasks": [
                {"name": "echo:job", "queue": "work"},
                {"name": "other:job", "queue": "other"},
                # Never due in a test run: step 4 starts it by hand.
                {
                    "name": "tick:job",
                    "queue": "ticks",
                    "schedule": "0 0 1 1 *",
                    "payload": {"id": "scheduled"},
                },
            ],
            "processors": processors,
        },
    }


def ready_pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    return [
        pod
        for pod in pods
        if pod["metadata"].get("deletionTimestamp") is None
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
    ]


def webhook_endpoints(cluster: Cluster) -> set[str]:
    """Addresses of the Ready endpoints of the chart's webhook Service."""
    slices = cluster.get(
        "endpointslices", "-n", OPERATOR_NAMESPACE,
        "-l", f"kubernetes.io/service-name={FULLNAME}-webhook",
    )["items"]  # fmt: skip
    return {
        address
        for s in slices
        for endpoint in s.get("endpoints") or []
        if endpoint.get("conditions", {}).get("ready")
        for address in endpoint["addresses"]
    }


def ready_condition(cluster: Cluster) -> dict[str, Any]:
    document = cluster.get("taskqueue", "-n", APP_NAMESPACE, TASKQUEUE)
    conditions = document.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Ready"), {})


def deployment(cluster: Cluster, processor: str) -> dict[str, Any]:
    document: dict[str, Any] = cluster.get(
        "deployment", "-n", APP_NAMESPACE, f"{TASKQUEUE}-{processor}"
    )
    return document


def enqueue_config(cluster: Cluster, tmp_path: Path) -> Path:
    path = tmp_path / "enqueue.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "app": APP,
                "sqs": {"endpoint": cluster.sqs_endpoint, "region": REGION, "queuePrefix": PREFIX},
            }
        )
    )
    return path


def enqueue(cluster: Cluster, config: Path, task: str, payload: dict[str, Any]) -> None:
    """`kube-taskqueue enqueue` as an app team runs it, from inside the cluster's network."""
    cluster.run(
        str(Path(sys.executable).parent / "kube-taskqueue"),
        "enqueue", "--config", str(config), "--name", task, json.dumps(payload),
        env={"PYTHONPATH": str(EXAMPLE_APP), "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing"},
    )  # fmt: skip


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


# -- 1. the operator from the chart --------------------------------------------------------


def test_helm_install_runs_the_operator_as_the_charts_service_account(cluster: Cluster) -> None:
    repository, _, tag = cluster.images.operator.rpartition(":")
    # The app's namespace exists first: the chart binds the operator's tenant role in it.
    cluster.kubectl("create", "namespace", APP_NAMESPACE)
    cluster.helm(
        "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
        "-f", str(OPERATOR_VALUES),
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", f"sqs.region={REGION}", "--wait", "--timeout=240s",
        timeout=300,
    )  # fmt: skip
    pods = ready_pods(cluster, OPERATOR_NAMESPACE, "app.kubernetes.io/name=kube-taskqueue-operator")
    assert len(pods) == 1
    (pod,) = pods
    assert pod["spec"]["serviceAccountName"] == FULLNAME
    assert pod["spec"]["containers"][0]["image"] == cluster.images.operator
    # Served through the chart's Service: its endpoints are the Ready operator pod.
    assert webhook_endpoints(cluster) == {pod["status"]["podIP"]}
    webhook = cluster.get("validatingwebhookconfiguration", FULLNAME)["webhooks"][0]
    assert webhook["clientConfig"]["service"]["name"] == f"{FULLNAME}-webhook"
    wait_until(
        "the operator to put its CA into the webhook configuration",
        lambda: cluster.get("validatingwebhookconfiguration", FULLNAME)["webhooks"][0][
            "clientConfig"
        ].get("caBundle"),
        timeout=60,
    )


def test_the_webhook_in_the_cluster_rejects_what_only_it_can_tell(
    cluster: Cluster, results_url: str
) -> None:
    document = taskqueue(cluster, results_url)
    # A queue split across two processors: the schema cannot tell, the webhook does.
    document["spec"]["processors"][1]["tasks"].append("echo:job")
    refused = wait_until(
        "the webhook to answer",
        lambda: (
            (r := cluster.apply(document, check=False)).returncode != 0
            and "denied the request" in r.stderr
            and r
        ),
        timeout=60,
        interval=2,
    )
    assert "admission webhook" in refused.stderr
    assert "echo:job" in refused.stderr


# -- 2. the app's TaskQueue ----------------------------------------------------------------


def test_taskqueue_creates_queues_and_ready_processor_pods_under_restricted_security(
    cluster: Cluster, sqs: Any, results_url: str
) -> None:
    cluster.kubectl(
        "label", "namespace", APP_NAMESPACE, "pod-security.kubernetes.io/enforce=restricted"
    )
    cluster.kubectl(
        "create", "secret", "generic", "sqs-credentials", "-n", APP_NAMESPACE,
        "--from-literal=AWS_ACCESS_KEY_ID=testing", "--from-literal=AWS_SECRET_ACCESS_KEY=testing",
    )  # fmt: skip
    cluster.apply(taskqueue(cluster, results_url))
    for processor in ("front", "back"):

        def created(name: str = f"{TASKQUEUE}-{processor}") -> bool:
            found = cluster.kubectl("get", "deployment", "-n", APP_NAMESPACE, name, check=False)
            return found.returncode == 0

        wait_until(f"Deployment {TASKQUEUE}-{processor}", created, timeout=60)
        cluster.wait_rollout(APP_NAMESPACE, f"deployment/{TASKQUEUE}-{processor}")
    names = {url.rsplit("/", 1)[1] for url in sqs.list_queues(QueueNamePrefix=PREFIX)["QueueUrls"]}
    assert {f"{PREFIX}{q}{s}" for q in ("work", "other", "ticks") for s in ("", "-dlq")} <= names
    pods = ready_pods(cluster, APP_NAMESPACE, f"taskqueue.dev/taskqueue={TASKQUEUE}")
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["containers"][0]["image"] == cluster.images.app
    # Enforced, not only labelled: a pod that is not restricted is refused in this namespace.
    refused = cluster.kubectl(
        "run", "privileged", "-n", APP_NAMESPACE, f"--image={cluster.images.app}",
        "--image-pull-policy=Never", "--restart=Never",
        '--overrides={"spec": {"containers": [{"name": "privileged", "image": "'
        + cluster.images.app + '", "securityContext": {"privileged": true}}]}}',
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr
    wait_until(
        "TaskQueue Ready", lambda: ready_condition(cluster).get("status") == "True", timeout=60
    )


# -- 3. messages ---------------------------------------------------------------------------


def test_pods_process_messages_from_enqueue_and_from_a_raw_send(
    cluster: Cluster, sqs: Any, results: Results, tmp_path: Path
) -> None:
    config = enqueue_config(cluster, tmp_path)
    enqueue(cluster, config, "echo:job", {"id": "cli-echo"})
    enqueue(cluster, config, "other:job", {"id": "cli-other"})
    url = sqs.get_queue_url(QueueName=f"{PREFIX}work")["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"id": "raw-echo"}),
        MessageAttributes={"JobName": {"DataType": "String", "StringValue": "echo:job"}},
    )
    results.wait_for({"cli-echo", "cli-other", "raw-echo"})
    by_id = {r["id"]: r for r in results.seen}
    assert by_id["cli-echo"]["pod"].startswith(f"{TASKQUEUE}-front-")
    assert by_id["cli-other"]["pod"].startswith(f"{TASKQUEUE}-back-")


def test_a_processor_as_pid_1_stops_on_sigterm_and_exits_0(cluster: Cluster) -> None:
    """Kubernetes stops a container by SIGTERM to its PID 1, which the kernel delivers only if
    the process handles it: an unhandled one would wait out the grace period for SIGKILL."""
    (pod,) = ready_pods(cluster, APP_NAMESPACE, "taskqueue.dev/processor=front")
    name = pod["metadata"]["name"]
    started = time.monotonic()
    # From inside the container, as the processor's own user: what the kubelet's stop sends.
    cluster.kubectl(
        "exec", "-n", APP_NAMESPACE, name, "--", "python3", "-c",
        "import os, signal; os.kill(1, signal.SIGTERM)",
    )  # fmt: skip

    def terminated() -> dict[str, Any] | None:
        status = cluster.get("pod", "-n", APP_NAMESPACE, name)["status"]["containerStatuses"][0]
        state: dict[str, Any] | None = status.get("lastState", {}).get("terminated")
        return state

    state = wait_until("the processor to exit", terminated, timeout=30, interval=0.5)
    assert time.monotonic() - started < 15
    assert state["exitCode"] == 0, state
    wait_until(
        "the restarted processor to be Ready",
        lambda: ready_pods(cluster, APP_NAMESPACE, "taskqueue.dev/processor=front"),
        timeout=60,
    )


# -- 4. the scheduled task -----------------------------------------------------------------


def test_a_job_from_the_cronjob_enqueues_its_payload(cluster: Cluster, results: Results) -> None:
    cronjobs = cluster.get("cronjobs", "-n", APP_NAMESPACE)["items"]
    assert len(cronjobs) == 1
    name = cronjobs[0]["metadata"]["name"]
    cluster.kubectl("create", "job", "-n", APP_NAMESPACE, f"--from=cronjob/{name}", "tick-now")
    cluster.kubectl(
        "wait", "-n", APP_NAMESPACE, "--for=condition=Complete", "job/tick-now", "--timeout=120s",
        timeout=130,
    )  # fmt: skip
    results.wait_for({"scheduled"})


# -- 5. a GitOps edit ----------------------------------------------------------------------


class Producer(threading.Thread):
    """Sends messages to both moving queues all through a rollout (bounded: at most `count`
    of each, one pair every `interval` seconds)."""

    def __init__(self, sqs: Any, *, count: int = 60, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self._sqs, self._count, self._interval = sqs, count, interval
        self.sent: set[str] = set()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            urls = {
                task: self._sqs.get_queue_url(QueueName=f"{PREFIX}{queue}")["QueueUrl"]
                for task, queue in (("echo:job", "work"), ("other:job", "other"))
            }
            for n in range(self._count):
                if self.stop.is_set():
                    return
                for task, url in urls.items():
                    message_id = f"roll-{task[:4]}-{n}-{uuid.uuid4().hex[:6]}"
                    self._sqs.send_message(
                        QueueUrl=url,
                        # Long enough that SIGTERM meets tasks running (their drain is tested).
                        MessageBody=json.dumps({"id": message_id, "seconds": 1}),
                        MessageAttributes={"JobName": {"DataType": "String", "StringValue": task}},
                    )
                    self.sent.add(message_id)
                time.sleep(self._interval)
        except BaseException as error:  # reported by the test
            self.error = error


@pytest.fixture
def producer(sqs: Any) -> Iterator[Producer]:
    thread = Producer(sqs)
    yield thread
    thread.stop.set()
    thread.join(30)


def test_gitops_edit_rolls_out_with_messages_flowing_and_none_lost(
    cluster: Cluster, sqs: Any, results: Results, results_url: str, producer: Producer
) -> None:
    results.drain()
    producer.start()
    time.sleep(3)
    cluster.apply(taskqueue(cluster, results_url, edited=True))
    reasons: set[str] = set()

    def rolled_out() -> bool:
        reasons.add(ready_condition(cluster).get("reason", ""))
        front, back = deployment(cluster, "front"), deployment(cluster, "back")
        for d, replicas in ((front, 2), (back, 1)):
            status = d.get("status", {})
            if not (
                d["spec"]["template"]["spec"]["containers"][0]["image"] == cluster.images.app_next
                and status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("updatedReplicas") == replicas
                and status.get("availableReplicas") == replicas
                and status.get("replicas") == replicas
            ):
                return False
        return ready_condition(cluster).get("status") == "True"

    wait_until("the edit to roll out", rolled_out, timeout=300, interval=1)
    producer.join(120)
    assert producer.error is None, producer.error
    assert "HandingOver" in reasons, reasons
    results.wait_for(producer.sent, timeout=120)
    pods = ready_pods(cluster, APP_NAMESPACE, f"taskqueue.dev/taskqueue={TASKQUEUE}")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {cluster.images.app_next}
    # The moved queue is now polled by the processor that took it.
    url = sqs.get_queue_url(QueueName=f"{PREFIX}other")["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"id": "after-move"}),
        MessageAttributes={"JobName": {"DataType": "String", "StringValue": "other:job"}},
    )
    results.wait_for({"after-move"})
    (moved,) = [r for r in results.seen if r["id"] == "after-move"]
    assert moved["pod"].startswith(f"{TASKQUEUE}-front-"), moved
    for queue in ("work", "other"):
        assert queue_counts(sqs, f"{PREFIX}{queue}-dlq") == (0, 0), f"{queue} dead-lettered"
    # Nothing processed twice is fine for SQS (at least once), but nothing may be missing.
    assert producer.sent <= results.ids()


# -- 6. deletion ---------------------------------------------------------------------------


def test_deleting_the_taskqueue_removes_its_pods_and_keeps_its_queues(
    cluster: Cluster, sqs: Any
) -> None:
    cluster.kubectl("delete", "taskqueue", "-n", APP_NAMESPACE, TASKQUEUE, "--timeout=120s")
    wait_until(
        "the processor pods to go",
        lambda: (
            not cluster.get("pods", "-n", APP_NAMESPACE, "-l", "taskqueue.dev/taskqueue")["items"]
        ),
        timeout=120,
    )
    assert not cluster.get("deployments", "-n", APP_NAMESPACE)["items"]
    names = {url.rsplit("/", 1)[1] for url in sqs.list_queues(QueueNamePrefix=PREFIX)["QueueUrls"]}
    assert {f"{PREFIX}work", f"{PREFIX}other", f"{PREFIX}ticks"} <= names


# -- 1b. production values ----------------------------------------------------------------


def test_production_values_run_two_peered_replicas(cluster: Cluster, results_url: str) -> None:
    """values-prod.yaml as it is, less what this node has not got: cert-manager (the operator
    issues the webhook certificate instead) and the Prometheus Operator's PodMonitor CRD."""
    # A TaskQueue the upgraded operator must reconcile, and uninstall must keep.
    kept = taskqueue(cluster, results_url)
    kept["metadata"]["name"] = "kept"
    kept["spec"]["sqs"]["queuePrefix"] = "e2e-kept-"
    repository, _, tag = cluster.images.operator.rpartition(":")
    cluster.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE,
        "-f", str(CHART / "values-prod.yaml"), "-f", str(OPERATOR_VALUES),
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "webhook.certManager.enabled=false", "--set", "metrics.podMonitor.enabled=false",
        "--wait", "--timeout=240s",
        timeout=300,
    )  # fmt: skip
    pods = ready_pods(cluster, OPERATOR_NAMESPACE, "app.kubernetes.io/name=kube-taskqueue-operator")
    assert len(pods) == 2
    assert {p["spec"]["serviceAccountName"] for p in pods} == {FULLNAME}
    # Both replicas serve the webhook: the Service's endpoints are both pods.
    assert webhook_endpoints(cluster) == {p["status"]["podIP"] for p in pods}
    # The active replica reconciles: a new TaskQueue is taken and Ready.
    cluster.apply(kept)
    wait_until(
        "the kept TaskQueue Ready under two replicas",
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in cluster.get("taskqueue", "-n", APP_NAMESPACE, "kept")
            .get("status", {})
            .get("conditions", [])
        ),
        timeout=90,
    )


# -- 7. uninstall --------------------------------------------------------------------------


def test_helm_uninstall_keeps_the_crd_and_the_taskqueues(cluster: Cluster) -> None:
    cluster.helm("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait", timeout=180)
    assert cluster.get("crd", "taskqueues.taskqueue.dev")["metadata"]["name"]
    assert cluster.get("taskqueue", "-n", APP_NAMESPACE, "kept")["metadata"]["name"] == "kept"
    assert not ready_pods(
        cluster, OPERATOR_NAMESPACE, "app.kubernetes.io/name=kube-taskqueue-operator"
    )
    with pytest.raises(ClusterError):
        cluster.kubectl("get", "validatingwebhookconfiguration", FULLNAME)
