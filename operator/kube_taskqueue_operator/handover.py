"""Queues moving between processors: which processor must wait for which.

When an edit moves a queue from one processor to another, the processor gaining it is
applied first, and the one losing it keeps its old Deployment (still polling the queue) until
the gaining one is rolled out. A failure in between leaves the queue polled by two processors
for a while, never by none. Worked out from the rendered and the live Deployments: each
carries the queues it polls in an annotation.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.render import polled_queues


@dataclasses.dataclass(frozen=True, kw_only=True)
class Handover:
    """Processor `losing` stops polling `queues`, which processor `gaining` starts to."""

    losing: str
    gaining: str
    queues: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"processor {self.losing} keeps polling {', '.join(self.queues)} until processor "
            f"{self.gaining}, which takes over, is rolled out"
        )


def _polls(deployments: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    result = {}
    for deployment in deployments:
        processor = (deployment.get("metadata", {}).get("labels") or {}).get(naming.LABEL_PROCESSOR)
        queues = polled_queues(deployment)
        if processor and queues is not None:
            result[str(processor)] = queues
    return result


def handovers(
    rendered: Iterable[Mapping[str, Any]], live: Iterable[Mapping[str, Any]]
) -> list[Handover]:
    """The queue moves from the live Deployments to the rendered ones. A processor missing
    from `rendered` (removed from the spec) loses all its queues. Queues swapped between
    processors (each waiting for the other, directly or round a cycle) are not ordered:
    no order is safe for both, so they are applied together as before."""
    wanted = _polls(rendered)
    current = _polls(live)
    moves: dict[tuple[str, str], set[str]] = defaultdict(set)  # (losing, gaining) -> queues
    for losing, had in current.items():
        lost = had - wanted.get(losing, frozenset())
        for gaining, will in wanted.items():
            if gaining == losing:
                continue
            # Whether the gaining one already has the queue in its live spec does not
            # matter: only its rollout says its pods poll it.
            if lost & will:
                moves[(losing, gaining)].update(lost & will)
    edges: dict[str, set[str]] = defaultdict(set)
    for losing, gaining in moves:
        edges[losing].add(gaining)
    return [
        Handover(losing=losing, gaining=gaining, queues=tuple(sorted(queues)))
        for (losing, gaining), queues in sorted(moves.items())
        if not _reaches(edges, gaining, losing)
    ]


def _reaches(edges: Mapping[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(edges.get(node, ()))
    return False
