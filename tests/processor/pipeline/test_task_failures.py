"""A task that raises what tasks should not raise (`sys.exit()`, KeyboardInterrupt,
asyncio.CancelledError, GeneratorExit) fails its message like any failure, retried then
dead-lettered, and its worker lives on: a real `kube-taskqueue run` with one worker."""

from __future__ import annotations

import json
from collections import Counter

import pipelineapp
from harness import wait_for
from kube_taskqueue import Producer, SqsSettings
from pipelinesupport import pipeline_config

ABORTS = {
    "exit": "abort:job",
    "interrupt": "abort:job",
    "generator_exit": "abort:job",
    "cancelled": "abort_async:job",
    "async_exit": "abort_async:job",
    "async_interrupt": "abort_async:job",
}


def test_whatever_a_task_raises_fails_its_message_and_the_worker_carries_on(
    sqs_endpoint, prefix, queues, records, spawn_pipeline
):
    queues.create("work", max_receive_count=2)
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    for how, task in ABORTS.items():
        producer.enqueue(pipelineapp.provider[task], {"id": how, "how": how.removeprefix("async_")})
    # One worker: had any of these ended it, nothing else would ever run.
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            workers=1,
            queues={"work": {"pollInterval": 1, "retryBackoffInitial": 0}},
        )
    )
    process.wait_ready()
    dead: dict[str, str] = {}

    def all_dead_lettered() -> bool:
        for message in queues.drain("work-dlq", wait=0.3):
            dead[json.loads(message["Body"])["id"]] = message["MessageId"]
        return set(dead) >= set(ABORTS)

    wait_for(all_dead_lettered, timeout=90)
    # Each was a failure of its message: run, retried on the same message, dead-lettered.
    starts = Counter(records.ids("start"))
    assert {how: starts[how] for how in ABORTS} == dict.fromkeys(ABORTS, 2)
    producer.enqueue(pipelineapp.provider["ok:job"], {"id": "after"})
    wait_for(lambda: "after" in records.ids("done"))
    assert process.process.poll() is None, process.output()
    status, body = process.get("/healthz")
    assert status == 200, body
    output = process.output()
    for name in ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "CancelledError"):
        assert f"task failed: {name}" in output
    _, metrics = process.get("/metrics")
    failed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("taskqueue_messages_failed_total")
    )
    assert failed == 2 * len(ABORTS)
