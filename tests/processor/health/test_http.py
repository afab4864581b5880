"""/healthz, /readyz and /metrics of a running processor."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import hangapp
import sampleapp
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_ready_healthy_and_metrics(sqs_endpoint, prefix, queues, records, start_processor):
    queues.create("work")
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    wait_for(lambda: get(processor.http_port, "/readyz")[0] == 200)
    assert json.loads(get(processor.http_port, "/healthz")[1]) == {"ok": True, "problems": []}
    Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix)).enqueue(
        sampleapp.provider["record:job"], {"id": "m"}
    )
    wait_for(
        lambda: (
            b'taskqueue_messages_deleted_total{queue="work"} 1.0'
            in get(processor.http_port, "/metrics")[1]
        )
    )
    metrics = get(processor.http_port, "/metrics")[1].decode()
    assert 'taskqueue_messages_processed_total{queue="work",task="record:job"} 1.0' in metrics
    assert 'taskqueue_task_duration_seconds_count{queue="work",task="record:job"} 1.0' in metrics
    assert get(processor.http_port, "/nope")[0] == 404


def test_not_ready_until_the_queue_exists(sqs_endpoint, prefix, queues, start_processor):
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    time.sleep(1.5)
    status, body = get(processor.http_port, "/readyz")
    assert status == 503
    assert "queue 'work' not reachable yet" in json.loads(body)["problems"]
    queues.create("work")
    wait_for(lambda: get(processor.http_port, "/readyz")[0] == 200, timeout=20)


def test_a_stuck_poller_makes_healthz_fail(sqs_endpoint, prefix, queues, start_processor):
    queues.create("work")
    queues.create("other")
    processor = start_processor(
        processor_config(endpoint=sqs_endpoint, prefix=prefix, stallTimeout=5)
    )
    wait_for(lambda: get(processor.http_port, "/readyz")[0] == 200)
    poller = processor.pollers[0]
    poller.last_progress -= 100  # as if its receive call had hung for 100 s
    status, body = get(processor.http_port, "/healthz")
    assert status == 503
    assert f"poller of queue {poller.queue!r} made no progress" in json.loads(body)["problems"][0]


def test_a_hung_sync_task_times_out_without_holding_its_worker_and_an_async_one_is_cancelled(
    sqs_endpoint, prefix, queues, start_processor
):
    queues.create("hang", max_receive_count=5)
    processor = start_processor(
        processor_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            app="hangapp:provider",
            queues={
                "hang": {
                    "pollInterval": 1,
                    "messageVisibilityTimeout": 10,
                    "retryBackoffInitial": 30,
                }
            },
        )
    )
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    producer.enqueue(hangapp.provider["slow_async:job"], {"seconds": 30})
    wait_for(lambda: processor.snapshot()["failed"] == 1)  # cancelled at its 0.5 s timeout
    hangapp.release.clear()
    producer.enqueue(hangapp.provider["hang:job"], {"seconds": 30})
    try:
        # Failed at its 0.5 s timeout and left running in the background: one abandoned
        # thread, fewer than the workers, so the pod stays live and keeps working.
        wait_for(lambda: processor.snapshot()["failed"] == 2, timeout=10)
        assert processor._workers.abandoned.running() == 1
        assert processor.liveness_problems() == []
        assert get(processor.http_port, "/healthz")[0] == 200
    finally:
        hangapp.release.set()
    wait_for(lambda: processor._workers.abandoned.running() == 0)
    wait_for(lambda: processor.liveness_problems() == [])
