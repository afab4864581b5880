"""Kubernetes-style conditions: transition times move only when a status changes."""

from __future__ import annotations

from kube_taskqueue_operator.conditions import DEGRADED, INVALID, READY, condition, find, merge


def test_a_new_condition_gets_the_current_time():
    [ready] = merge([], [condition(READY, True, reason="Reconciled", generation=3)], timestamp="T1")
    assert ready == {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "",
        "observedGeneration": 3,
        "lastTransitionTime": "T1",
    }


def test_an_unchanged_status_keeps_its_transition_time_but_takes_the_new_reason():
    first = merge([], [condition(READY, False, reason="SQSUnavailable")], timestamp="T1")
    second = merge(
        first, [condition(READY, False, reason="QueueNotOwned", message="m")], timestamp="T2"
    )
    assert find(second, READY)["lastTransitionTime"] == "T1"
    assert find(second, READY)["reason"] == "QueueNotOwned"
    third = merge(second, [condition(READY, True, reason="Reconciled")], timestamp="T3")
    assert find(third, READY)["lastTransitionTime"] == "T3"


def test_conditions_not_updated_are_kept_and_order_is_stable():
    current = merge(
        [],
        [condition(DEGRADED, True, reason="x"), condition(READY, False, reason="y")],
        timestamp="T1",
    )
    merged = merge(current, [condition(INVALID, False, reason="Valid")], timestamp="T2")
    assert [c["type"] for c in merged] == ["Ready", "Invalid", "Degraded"]
    assert find(merged, "Missing") is None
