"""Which processor waits for which when queues move between processors."""

from __future__ import annotations

from typing import Any

from kube_taskqueue_operator.handover import Handover, handovers
from kube_taskqueue_operator.resource.naming import LABEL_PROCESSOR
from kube_taskqueue_operator.resource.render import QUEUES_ANNOTATION


def deployment(processor: str, queues: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": {LABEL_PROCESSOR: processor}}
    if queues is not None:
        metadata["annotations"] = {QUEUES_ANNOTATION: queues}
    return {"metadata": metadata}


def test_a_moved_queue_makes_the_losing_processor_wait_for_the_gaining_one():
    live = [deployment("a", "q,r"), deployment("b", "s")]
    rendered = [deployment("a", "r"), deployment("b", "q,s")]
    assert handovers(rendered, live) == [Handover(losing="a", gaining="b", queues=("q",))]


def test_a_removed_processor_hands_its_queues_to_the_new_owners():
    live = [deployment("a", "q,r"), deployment("b", "s")]
    rendered = [deployment("b", "q,s"), deployment("c", "r")]
    assert handovers(rendered, live) == [
        Handover(losing="a", gaining="b", queues=("q",)),
        Handover(losing="a", gaining="c", queues=("r",)),
    ]


def test_a_new_or_dropped_queue_is_no_handover():
    live = [deployment("a", "q")]
    assert handovers([deployment("a", "q,new")], live) == []
    assert handovers([deployment("a", "")], live) == []
    assert handovers([deployment("a", "q"), deployment("b", "fresh")], live) == []


def test_swaps_and_cycles_are_not_ordered():
    live = [deployment("a", "q"), deployment("b", "r"), deployment("c", "s")]
    swap = [deployment("a", "r"), deployment("b", "q"), deployment("c", "s")]
    assert handovers(swap, live) == []
    cycle = [deployment("a", "s"), deployment("b", "q"), deployment("c", "r")]
    assert handovers(cycle, live) == []
    # A chain is ordered: a waits for b, b waits for c.
    chain = [deployment("a", ""), deployment("b", "q"), deployment("c", "r,s")]
    assert handovers(chain, live) == [
        Handover(losing="a", gaining="b", queues=("q",)),
        Handover(losing="b", gaining="c", queues=("r",)),
    ]


def test_a_live_deployment_without_the_annotation_is_not_ordered():
    # Made by an operator before the annotation existed: what it polls is unknown here.
    assert handovers([deployment("b", "q")], [deployment("a", None)]) == []
