"""The operator's guarantees: bad manifests rejected at apply with nothing half-made, crash
safety at every step of a reconcile, repair of out-of-band changes, restricted pods, and no
credentials anywhere they could leak."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import wait_for
from kube_taskqueue_operator.failpoints import ALL as FAILPOINTS
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse
from operator_harness import OperatorProcess, condition, create_credentials_secret, events, get

Change = Callable[[dict[str, Any]], None]


def at(path: str, value: Any) -> Change:
    """Set spec.<path> (dots, numeric list indices) to value."""

    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return change


def apply_to(change: Callable[[dict[str, Any]], Any]) -> Change:
    def wrapped(spec: dict[str, Any]) -> None:
        change(spec)

    return wrapped


CORPUS: list[tuple[str, Change, str]] = [
    # wrong types
    ("maxBatchSize as text", at("queues.0.maxBatchSize", "ten"), "maxBatchSize"),
    ("pollInterval as text", at("queues.0.pollInterval", "soon"), "pollInterval"),
    ("replicas as text", at("processors.0.replicas", "two"), "replicas"),
    ("tasks not a list", at("processors.0.tasks", "record:job"), "tasks"),
    ("queues not a list", at("queues", {"name": "work"}), "queues"),
    ("region as a number", at("sqs.region", 5), "region"),
    ("deletionPolicy unknown", at("deletionPolicy", "Forget"), "deletionPolicy"),
    ("adoption as text", at("adoptExistingQueues", "yes"), "adoptExistingQueues"),
    ("payload not an object", at("tasks.2.payload", [1, 2]), "payload"),
    # bounds and oversized values
    ("maxBatchSize 11", at("queues.0.maxBatchSize", 11), "maxBatchSize"),
    ("maxBatchSize 0", at("queues.0.maxBatchSize", 0), "maxBatchSize"),
    (
        "visibility over 12 h",
        at("queues.0.messageVisibilityTimeout", 50_000),
        "messageVisibilityTimeout",
    ),
    ("pollInterval 0", at("queues.0.pollInterval", 0), "pollInterval"),
    ("maxReceiveCount 0", at("queues.0.deadLetter.maxReceiveCount", 0), "maxReceiveCount"),
    ("maxReceiveCount 1001", at("queues.0.deadLetter.maxReceiveCount", 1001), "maxReceiveCount"),
    (
        "retention under a minute",
        at("queues.1.messageRetentionPeriod", 59),
        "messageRetentionPeriod",
    ),
    ("processor name too long", at("processors.1.name", "p" * 41), "name"),
    ("processor name not a DNS label", at("processors.1.name", "Others_1"), "name"),
    ("queue name with a space", at("queues.1.name", "other queue"), "name"),
    ("empty image", at("image", ""), "image"),
    ("workers 0", at("processors.0.workers", 0), "workers"),
    ("region not a region", at("sqs.region", "EU West"), "region"),
    # unknown fields
    ("unknown spec field", at("surprise", True), 'unknown field "spec.surprise"'),
    ("unknown queue field", at("queues.0.colour", "blue"), "unknown field"),
    # rules the API server checks with CEL
    # (their messageExpression names the culprit, as the webhook does)
    (
        "duplicate queue",
        apply_to(lambda s: s["queues"].append(copy.deepcopy(s["queues"][0]))),
        "queue names must be unique: 'work' is declared more than once",
    ),
    (
        "duplicate processor",
        apply_to(lambda s: s["processors"].append({"name": "main", "tasks": ["other:job"]})),
        "processor names must be unique: 'main' is declared more than once",
    ),
    (
        "task on an undeclared queue",
        at("tasks.2.queue", "nowhere"),
        "task 'other:job' uses queue 'nowhere', which is not declared in spec.queues",
    ),
    (
        "processor names an unknown task",
        apply_to(lambda s: s["processors"][0]["tasks"].append("ghost:job")),
        "processor 'main' names unknown task 'ghost:job'",
    ),
    (
        "payload without schedule",
        at("tasks.0.payload", {"a": 1}),
        "task 'record:job' has a payload but no schedule to send it on",
    ),
    (
        "dedup on a standard queue",
        at("queues.0.contentBasedDeduplication", True),
        "queue 'work': contentBasedDeduplication is only for FIFO",
    ),
    (
        "backoff initial over max",
        apply_to(lambda s: s["queues"][0].update(retryBackoffInitial=60, retryBackoffMax=10)),
        "queue 'work': retryBackoffInitial must not exceed",
    ),
    (
        "autoscaling min over max",
        at("processors.0.autoscaling", {"minReplicas": 5, "maxReplicas": 2}),
        "processor 'main': autoscaling.minReplicas must not exceed",
    ),
    (
        "autoscaling to zero",
        at("processors.0.autoscaling", {"minReplicas": 0}),
        "processor 'main': autoscaling.minReplicas is 0: scale-to-zero needs queue-driven",
    ),
    # rules of the webhook
    (
        "queue split across processors",
        at(
            "processors",
            [
                {"name": "main", "tasks": ["record:job", "other:job"]},
                {"name": "half", "tasks": ["record_async:job"]},
            ],
        ),
        "queue 'work' is split across processors",
    ),
    (
        "task in two processors",
        apply_to(lambda s: s["processors"][1]["tasks"].append("record:job")),
        "is assigned to more than one processor",
    ),
    (
        "task in no processor",
        at("processors", [{"name": "main", "tasks": ["record:job", "record_async:job"]}]),
        "task 'other:job' is assigned to no processor",
    ),
    (
        "invalid cron",
        at("tasks.2.schedule", "61 * * * *"),
        "invalid cron schedule '61 * * * *': minute field '61' is out of range 0-59",
    ),
    (
        "cron with seconds",
        at("tasks.2.schedule", "0 */5 * * * *"),
        "it has six fields, but Kubernetes CronJobs have no seconds field",
    ),
    (
        "env the operator sets",
        at("processors.0.env", [{"name": "AWS_REGION", "value": "eu-west-1"}]),
        "env variable 'AWS_REGION' is set by the operator",
    ),
    # what the build would fail on (#15): the same rules as `validate`, at apply
    (
        "SQS name over 80",
        apply_to(
            lambda s: (s["queues"][1].update(name="o" * 75), s["tasks"][2].update(queue="o" * 75))
        ),
        "SQS allows at most 80",
    ),
    (
        "a queue named like another's dead-letter queue",
        apply_to(lambda s: s["queues"].append({"name": "work-dlq"})),
        "every queue and dead-letter queue needs a name of its own",
    ),
    (
        "scheduled task without a slug",
        apply_to(
            lambda s: (s["tasks"][2].update(name="::"), s["processors"][1].update(tasks=["::"]))
        ),
        "a scheduled task's name needs a letter or a digit",
    ),
    ("region '-'", at("sqs.region", "-"), "is not an AWS region name"),
    (
        "image with a space",
        at("image", "registry.example.test/app:1 "),
        "is not an image reference",
    ),
]


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30


def test_every_bad_manifest_is_rejected_at_apply_and_nothing_is_half_made(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues, report
):
    rejected = []
    for label, change, expected in CORPUS:
        document = make_manifest()
        change(document["spec"])
        result = kubectl_apply(document)
        assert result.returncode != 0, f"{label}: accepted"
        assert expected in result.stderr, f"{label}: {result.stderr}"
        rejected.append(label)
    # The cross-resource rule: a second resource claiming the first one's queue.
    assert kubectl_apply(make_manifest("first")).returncode == 0
    wait_for(
        lambda: (
            (c := condition(get(control_plane, "tq", "first", namespace), "Ready"))
            and c["status"] == "True"
        ),
        timeout=60,
    )
    clash = kubectl_apply(make_manifest("second"))
    assert clash.returncode != 0 and "is also declared by TaskQueue" in clash.stderr
    rejected.append("physical queue claimed by another TaskQueue")
    report(
        f"[bad manifests] {len(rejected)} invalid TaskQueues rejected at apply, each naming its problem"
    )
    # Nothing half-made: only `first`'s queues and workloads exist.
    assert queues.names() == ["other", "work", "work-dlq"]
    deployments = control_plane.kubectl_run(
        "get", "deployments", "-n", namespace, "-o", "name"
    ).stdout.split()
    assert sorted(deployments) == ["deployment.apps/first-main", "deployment.apps/first-others"]
    assert get(control_plane, "tq", "second", namespace) is None


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_an_operator_crashing_at_each_step_converges_on_restart(
    control_plane, crd, tmp_path, namespace, make_manifest, kubectl_apply, queues, failpoint, report
):
    # Watching only this test's namespace: TaskQueues other tests left behind (namespaces
    # never finish terminating without a controller-manager) must not trip the failpoint.
    crashing = OperatorProcess(
        control_plane, tmp_path, webhook_enabled="false", failpoint=failpoint, namespaces=namespace
    )
    try:
        crashing.wait_ready()
        kubectl_apply(make_manifest())
        assert crashing.process.wait(60) == 70, crashing.output()[-2000:]
    finally:
        crashing.stop()
    restarted = OperatorProcess(
        control_plane, tmp_path, webhook_enabled="false", namespaces=namespace
    )
    try:
        restarted.wait_ready()
        wait_for(
            lambda: (
                (c := condition(get(control_plane, "tq", "app", namespace), "Ready"))
                and c["status"] == "True"
            ),
            timeout=60,
        )
    finally:
        restarted.stop()
    assert queues.names() == ["other", "work", "work-dlq"]
    for kind, expected in (
        ("deployments", ["app-main", "app-others"]),
        ("configmaps", ["app-main", "app-others"]),
        ("cronjobs", ["app-other-job"]),
    ):
        found = control_plane.kubectl_run(
            "get",
            kind,
            "-n",
            namespace,
            "-l",
            "taskqueue.dev/taskqueue=app",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ).stdout.split()
        if kind == "configmaps":  # named by their content: <workload>-<hash>
            found = [name.rsplit("-", 1)[0] for name in found]
        assert sorted(found) == expected, kind
    report(
        f"[operator crash {failpoint}] converged after restart: 3 queues, 5 objects, no duplicates"
    )


def test_a_changed_queue_attribute_is_repaired_within_one_drift_period(
    control_plane, operator, namespace, make_manifest, kubectl_apply, queues, report
):
    kubectl_apply(make_manifest())
    wait_for(
        lambda: (
            (c := condition(get(control_plane, "tq", "app", namespace), "Ready"))
            and c["status"] == "True"
        ),
        timeout=60,
    )
    url = queues.url("work")
    queues.sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": "999", "RedrivePolicy": ""}
    )

    changed = time.monotonic()

    def repaired() -> bool:
        attributes = queues.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        return (
            attributes["VisibilityTimeout"] == "10"
            and "RedrivePolicy" in attributes
            and attributes["RedrivePolicy"] != ""
        )

    wait_for(repaired, timeout=20)
    seconds = time.monotonic() - changed
    assert seconds < 3 + 5  # one drift period (3 s here) plus the reconcile itself

    def repair_event() -> bool:
        # kopf posts events asynchronously: it may land just after the repair.
        messages = [
            e["message"] for e in events(control_plane, namespace) if e["reason"] == "Reconciled"
        ]
        return any("VisibilityTimeout" in m and "RedrivePolicy" in m for m in messages)

    wait_for(repair_event, timeout=15)
    report(f"[drift] changed queue attributes repaired after {seconds:.1f} s (drift period 3 s)")


def test_processor_and_operator_pods_pass_the_restricted_pod_security_standard(
    control_plane, namespace, make_manifest
):
    control_plane.kubectl_run(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )
    processor_objects = render(parse(make_manifest()))
    chart = Path(__file__).parents[2] / "charts" / "kube-taskqueue-operator"
    rendered = subprocess.run(
        [
            str(control_plane.helm),
            "template",
            "t",
            str(chart),
            "-n",
            namespace,
            "--kube-version",
            "1.34.4",
            # The chart asks for the image one builds from operator/Dockerfile.
            "--set",
            "image.repository=registry.example.com/kube-taskqueue-operator",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    operator_deployment = [
        d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"
    ]
    stream = "\n---\n".join(
        json.dumps(o)
        for o in [*processor_objects, *operator_deployment]
        if o["kind"] in {"Deployment", "CronJob"}
    )
    result = control_plane.kubectl_run(
        "apply", "--dry-run=server", "-f", "-", input=stream, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
    # The check is real: a privileged pod is refused in that namespace.
    bad = copy.deepcopy(processor_objects[1])
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "allowPrivilegeEscalation"
    ] = True
    refused = control_plane.kubectl_run(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False
    )
    assert 'would violate PodSecurity "restricted:latest"' in refused.stderr


def test_credentials_never_leak(control_plane, operator, namespace, make_manifest, kubectl_apply):
    secret_value = "S3cr3tValue-do-not-leak-9f2c"
    create_credentials_secret(control_plane, namespace, key_id="AKIDLEAKCHECK", secret=secret_value)
    document = make_manifest()
    document["spec"]["sqs"]["credentialsSecret"] = "sqs"
    kubectl_apply(document)
    wait_for(
        lambda: (
            (c := condition(get(control_plane, "tq", "app", namespace), "Ready"))
            and c["status"] == "True"
        ),
        timeout=60,
    )
    places = {
        "configmaps": control_plane.kubectl_run(
            "get", "configmaps", "-n", namespace, "-o", "yaml"
        ).stdout,
        "deployments": control_plane.kubectl_run(
            "get", "deployments,cronjobs", "-n", namespace, "-o", "yaml"
        ).stdout,
        "status": control_plane.kubectl_run(
            "get", "tq", "app", "-n", namespace, "-o", "yaml"
        ).stdout,
        "events": control_plane.kubectl_run("get", "events", "-n", namespace, "-o", "yaml").stdout,
        "operator log": operator.output(),
    }
    for place, text in places.items():
        assert secret_value not in text, place
        assert "AKIDLEAKCHECK" not in text, place
    assert "secretKeyRef" in places["deployments"]
