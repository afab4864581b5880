"""A resource that stays Degraded is retried every few seconds (and by the drift timer); it
gets one Warning event per problem, not one per retry. (Grouped here with the operator's
behaviour under failure; the limiter lives in handlers.py.)"""

from __future__ import annotations

import json
import time

from harness import free_port, wait_for
from operator_harness import OperatorProcess, condition, events, get


def test_the_same_warning_passes_once_per_interval_and_normal_events_always():
    from kube_taskqueue_operator.handlers import WarningLimiter

    now = [0.0]
    limiter = WarningLimiter(interval=60, clock=lambda: now[0])
    same = {"uid": "u", "kind": "Warning", "reason": "SQSUnavailable", "message": "down"}
    assert limiter.allow(**same)
    assert not limiter.allow(**same)
    assert limiter.allow(**{**same, "message": "another problem"})
    assert limiter.allow(**{**same, "uid": "other"})
    assert limiter.allow(**{**same, "kind": "Normal"}) and limiter.allow(
        **{**same, "kind": "Normal"}
    )
    now[0] = 61
    assert limiter.allow(**same)
    limiter.forget("u")  # healthy again: a new episode is posted at once
    assert limiter.allow(**same)


def test_an_unreachable_sqs_gets_one_warning_not_one_per_retry(
    control_plane, crd, tmp_path, namespace, make_manifest
):
    operator = OperatorProcess(control_plane, tmp_path)  # drift timer every 3 s
    try:
        operator.wait_ready()
        document = make_manifest()
        document["spec"]["sqs"]["endpoint"] = f"http://127.0.0.1:{free_port()}"  # refused
        control_plane.kubectl_run("create", "-f", "-", input=json.dumps(document))

        def degraded():
            found = condition(get(control_plane, "tq", "app", namespace), "Degraded")
            return found if found and found["status"] == "True" else None

        assert wait_for(degraded, timeout=60)["reason"] == "SQSUnavailable"
        time.sleep(15)  # several retries and drift ticks
        assert (
            operator.output().count("Handler 'drift'")
            + operator.output().count("Handler 'reconcile'")
            >= 0
        )
        warnings = [
            e
            for e in events(control_plane, namespace)
            if e["type"] == "Warning" and e["reason"] == "SQSUnavailable"
        ]
        assert len(warnings) == 1, [w["message"] for w in warnings]
        assert warnings[0].get("count", 1) == 1
    finally:
        operator.stop()
