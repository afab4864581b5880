"""A sync task past its timeout fails its message and frees its worker at once, instead of
hanging the pod: against moto's server with a processor in this test process."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings

sys.path.insert(0, str(Path(__file__).parent))

import timedapp  # importable once its directory is on the path


def test_a_stuck_sync_task_times_out_and_the_others_go_on(
    sqs_endpoint, prefix, queues, start_processor
):
    queues.create("work", max_receive_count=2)
    timedapp.seen.clear()
    timedapp.stopped.clear()
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="timedapp:provider")
    config["workers"] = 1  # one worker: a hung task would block everything behind it
    config["queues"] = {
        "work": {"pollInterval": 1, "messageVisibilityTimeout": 10, "retryBackoffInitial": 0}
    }
    processor = start_processor(config)
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    producer.enqueue(timedapp.provider["stuck:job"], {"id": "stuck"})
    producer.enqueue(timedapp.provider["quick:job"], {"id": "q"})
    producer.enqueue(timedapp.provider["plain:job"], {"id": "p"})
    wait_for(lambda: {"q:1", "p"} <= set(timedapp.seen), timeout=30)
    assert timedapp.stopped.wait(10)  # cancelled() turned True and the task stopped itself
    failed = processor.metrics.registry.get_sample_value(
        "taskqueue_messages_failed_total", {"queue": "work", "task": "stuck:job"}
    )
    assert failed and failed >= 1
    assert processor.liveness_problems() == []  # no hang reported: the worker is free
    wait_for(lambda: queues.counts("work-dlq")[0] == 1, timeout=30)  # retried, then dead


def test_abandoned_threads_as_many_as_workers_fail_liveness(
    sqs_endpoint, prefix, queues, start_processor
):
    queues.create("work")
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="timedapp:provider")
    config["workers"] = 1
    config["queues"] = {"work": {"pollInterval": 1, "messageVisibilityTimeout": 10}}
    processor = start_processor(config)
    release = threading.Event()
    blocker = threading.Thread(target=release.wait, daemon=True)
    blocker.start()
    processor._workers.abandoned.add(blocker)  # as a task that ignores cancelled() would be
    try:
        assert any("given up on" in p for p in processor.liveness_problems())
    finally:
        release.set()
        blocker.join(5)
    assert processor.liveness_problems() == []
