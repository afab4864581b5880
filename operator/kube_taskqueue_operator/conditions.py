"""Kubernetes-style conditions (kopf has no helper for them).

`lastTransitionTime` changes only when a condition's status changes, as the API conventions
ask, so a steady resource's status does not churn on every reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
INVALID = "Invalid"
DEGRADED = "Degraded"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    kind: str, status: bool, *, reason: str, message: str = "", generation: int | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def merge(
    current: Iterable[Mapping[str, Any]],
    updates: Iterable[Mapping[str, Any]],
    *,
    timestamp: str | None = None,
) -> list[dict[str, Any]]:
    """Conditions after `updates`: a changed status gets a new lastTransitionTime, an
    unchanged one keeps its old time; conditions not updated are kept as they are."""
    stamp = timestamp or now()
    merged = {str(c["type"]): dict(c) for c in current}
    for update in updates:
        kind = str(update["type"])
        previous = merged.get(kind)
        entry = dict(update)
        if previous is not None and previous.get("status") == update["status"]:
            entry["lastTransitionTime"] = previous.get("lastTransitionTime", stamp)
        else:
            entry["lastTransitionTime"] = stamp
        merged[kind] = entry
    order = {READY: 0, INVALID: 1, DEGRADED: 2}
    return sorted(merged.values(), key=lambda c: (order.get(str(c["type"]), 9), str(c["type"])))


def find(conditions: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)
