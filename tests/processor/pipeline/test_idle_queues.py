"""An idle queue does not tie up a share of the pool: with one idle and one busy queue, the
busy queue's tasks get every worker, the idle queue is still polled, and no receive asks for
more messages than there are free workers."""

from __future__ import annotations

import pipelineapp
from harness import wait_for
from kube_taskqueue import Producer, SqsSettings
from pipelinesupport import pipeline_config

WORKERS = 4


def running_at_once(events: list[tuple[str, str, int, int]], ids: set[str]) -> int:
    """The most tasks of `ids` that ran at the same time, from the durable log's order."""
    running = most = 0
    for event, item, _, _ in events:
        if item in ids:
            running += {"start": 1, "done": -1}.get(event, 0)
            most = max(most, running)
    return most


def test_a_busy_queue_gets_every_worker_while_an_idle_queue_is_still_polled(
    sqs_endpoint, sqs_proxy, prefix, queues, records, release, spawn_pipeline
):
    queues.create("work")
    queues.create("idle")
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    busy = {f"b{i}" for i in range(2 * WORKERS)}
    producer.enqueue_many(
        pipelineapp.provider["block:job"], [{"id": i, "release": str(release)} for i in busy]
    )
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_proxy.endpoint,
            prefix=prefix,
            workers=WORKERS,
            tasks=None,  # both queues
            queues={"work": {"pollInterval": 1}, "idle": {"pollInterval": 1}},
        )
    )
    process.wait_ready()
    # The busy queue's tasks block until released: every worker must end up running one.
    wait_for(lambda: len(records.ids("start")) >= WORKERS, timeout=30)
    assert running_at_once(records.events(), busy) == WORKERS
    release.touch()
    wait_for(lambda: set(records.ids("done")) >= busy, timeout=60)
    # The idle queue was polled all along, and still is: its message runs.
    producer.enqueue(pipelineapp.provider["idle:job"], {"id": "idle"})
    wait_for(lambda: "idle" in records.ids("done"), timeout=30)
    receives = sqs_proxy.of("ReceiveMessage")
    assert sum(call.queue_url.endswith(f"/{prefix}idle") for call in receives) >= 2
    # The no-buffer rule holds: a receive never asks for more messages than the pool has.
    assert all(int(call.body["MaxNumberOfMessages"]) <= WORKERS for call in receives)
