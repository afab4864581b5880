"""The operator under failure: SQS unreachable, a crash mid-reconcile, no webhook."""

from __future__ import annotations

import signal

import pytest
from harness import wait_for
from operator_harness import OperatorProcess, condition, events, get
from proxy import OutageProxy


@pytest.fixture
def start_operator(control_plane, crd, tmp_path):
    started: list[OperatorProcess] = []

    def start(**settings) -> OperatorProcess:
        process = OperatorProcess(control_plane, tmp_path, **settings)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def test_sqs_unreachable_is_degraded_then_ready_when_back(
    control_plane, start_operator, namespace, make_manifest, kubectl_apply, moto_port, queues
):
    proxy = OutageProxy(moto_port)
    try:
        proxy.down()
        start_operator()
        document = make_manifest()
        document["spec"]["sqs"]["endpoint"] = proxy.endpoint
        assert kubectl_apply(document).returncode == 0

        def degraded():
            obj = get(control_plane, "tq", "app", namespace)
            found = condition(obj, "Degraded")
            return found if found and found["status"] == "True" else None

        found = wait_for(degraded, timeout=60)
        assert found["reason"] == "SQSUnavailable"
        ready = condition(get(control_plane, "tq", "app", namespace), "Ready")
        assert ready["status"] == "False"
        assert get(control_plane, "deployment", "app-main", namespace) is None
        proxy.up()
        wait_for(
            lambda: (
                condition(get(control_plane, "tq", "app", namespace), "Ready")["status"] == "True"
            ),
            timeout=60,
        )
        assert (
            condition(get(control_plane, "tq", "app", namespace), "Degraded")["status"] == "False"
        )
        assert get(control_plane, "deployment", "app-main", namespace) is not None
    finally:
        proxy.close()


def test_an_operator_killed_mid_reconcile_converges_without_duplicates(
    control_plane, start_operator, namespace, make_manifest, kubectl_apply, queues
):
    first = start_operator()
    kubectl_apply(make_manifest())
    # Kill it as soon as the first queue exists: the reconcile is half done.
    wait_for(
        lambda: queues.sqs.list_queues(QueueNamePrefix=queues.prefix).get("QueueUrls"),
        timeout=30,
        interval=0.02,
    )
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    start_operator()
    wait_for(
        lambda: (
            condition(get(control_plane, "tq", "app", namespace), "Ready")
            and condition(get(control_plane, "tq", "app", namespace), "Ready")["status"] == "True"
        ),
        timeout=60,
    )
    assert queues.names() == ["other", "work", "work-dlq"]
    deployments = control_plane.kubectl_run(
        "get", "deployments", "-n", namespace, "-o", "name"
    ).stdout.split()
    assert sorted(deployments) == ["deployment.apps/app-main", "deployment.apps/app-others"]
    config_maps = control_plane.kubectl_run(
        "get", "configmaps", "-n", namespace, "-l", "taskqueue.dev/taskqueue=app", "-o", "name"
    ).stdout.split()
    # named by their content: <workload>-<hash>
    assert sorted(n.rsplit("-", 1)[0] for n in config_maps) == [
        "configmap/app-main",
        "configmap/app-others",
    ]


def test_without_the_webhook_an_invalid_resource_gets_condition_invalid_and_nothing_else(
    control_plane, start_operator, namespace, make_manifest, kubectl_apply, queues
):
    start_operator(webhook_enabled="false")
    document = make_manifest()
    document["spec"]["processors"] = [
        {"name": "main", "tasks": ["record:job", "other:job"]},
        {"name": "half", "tasks": ["record_async:job"]},
    ]
    assert kubectl_apply(document).returncode == 0  # the schema alone cannot see a split

    def invalid():
        found = condition(get(control_plane, "tq", "app", namespace), "Invalid")
        return found if found and found["status"] == "True" else None

    found = wait_for(invalid, timeout=60)
    assert "queue 'work' is split across processors" in found["message"]
    ready = condition(get(control_plane, "tq", "app", namespace), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Invalid")
    warnings = [
        e
        for e in events(control_plane, namespace)
        if e["type"] == "Warning" and e["reason"] == "Invalid"
    ]
    assert warnings and "split across processors" in warnings[0]["message"]
    assert get(control_plane, "deployment", "app-main", namespace) is None
    assert queues.sqs.list_queues(QueueNamePrefix=queues.prefix).get("QueueUrls") is None
