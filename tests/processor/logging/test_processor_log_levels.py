"""What a processor logs at its default level: no line per task that succeeded (counted in
/metrics, shown at DEBUG), every failure at ERROR with its traceback, and log writes that never
hold up a worker, even while nothing reads the log stream. Real `kube-taskqueue run`
processes against moto's server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import sampleapp
import yaml
from harness import SUPPORT, processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def stop_gracefully(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


def metric(process: Any, line_start: str) -> float:
    status, body = process.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def enqueue(endpoint: str, prefix: str, payloads: list[dict[str, Any]]) -> None:
    producer = Producer.from_settings(SqsSettings(endpoint=endpoint, queuePrefix=prefix))
    result = producer.enqueue_many(sampleapp.provider["record:job"], payloads)
    assert result.ok, result.failed


def test_by_default_successes_are_counted_not_logged_and_failures_are_logged_in_full(
    sqs_endpoint, prefix, queues, records, spawn
):
    queues.create("work")
    queues.create("other")
    enqueue(
        sqs_endpoint,
        prefix,
        [{"id": "ok-1"}, {"id": "ok-2"}, {"id": "ok-3"}, {"id": "flaky", "fail_times": 1}],
    )
    process = spawn(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    process.wait_ready()
    wait_for(lambda: sorted(records.ids("done")) == ["flaky", "ok-1", "ok-2", "ok-3"], timeout=60)
    processed = 'taskqueue_messages_processed_total{queue="work",task="record:job"}'
    wait_for(lambda: metric(process, processed) == 4)
    failed = 'taskqueue_messages_failed_total{queue="work",task="record:job"}'
    assert metric(process, failed) == 1
    stop_gracefully(process.process)

    lines = json_lines(process.output())
    assert not [line for line in lines if line["message"] == "task done"]
    [failure] = [line for line in lines if line["message"].startswith("task failed")]
    assert failure["level"] == "ERROR"
    assert failure["message"] == "task failed: RuntimeError: planned failure of flaky"
    assert failure["task"] == "record:job" and failure["receive_count"] == 1
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert 'raise RuntimeError(f"planned failure of {payload.id}")' in failure["exception"]
    assert failure["exception"].rstrip().endswith("RuntimeError: planned failure of flaky")
    # The processor's own lines are still there, in order, the last one included.
    messages = [line["message"] for line in lines]
    assert messages[-1].startswith("processor stopped")


def test_at_debug_every_success_is_a_line_with_its_task_message_and_duration(
    sqs_endpoint, prefix, queues, records, spawn, sqs
):
    queues.create("work")
    queues.create("other")
    enqueue(sqs_endpoint, prefix, [{"id": f"m{i}"} for i in range(5)])
    process = spawn(processor_config(endpoint=sqs_endpoint, prefix=prefix, logLevel="DEBUG"))
    process.wait_ready()
    wait_for(lambda: len(records.ids("done")) == 5, timeout=60)
    wait_for(lambda: queues.counts("work") == (0, 0))
    stop_gracefully(process.process)

    done = [line for line in json_lines(process.output()) if line["message"] == "task done"]
    assert len(done) == 5
    for line in done:
        assert line["level"] == "DEBUG" and line["logger"] == "kube_taskqueue.tasks"
        assert line["task"] == "record:job" and line["queue"] == "work"
        assert isinstance(line["duration"], float)
    assert len({line["message_id"] for line in done}) == 5


def test_a_log_stream_nobody_reads_does_not_hold_up_the_workers(
    sqs_endpoint, prefix, queues, records, tmp_path: Path
):
    """stderr is a pipe that is not read while the processor runs, so it fills (64 KiB) after
    a couple of hundred DEBUG lines. Writing it directly, a worker's next log call would block
    there until it is read; here every message is processed and deleted meanwhile."""
    queues.create("work")
    queues.create("other")
    count = 400  # ~100 KiB of DEBUG lines: more than a pipe holds (64 KiB)
    enqueue(sqs_endpoint, prefix, [{"id": f"m{i}"} for i in range(count)])
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, logLevel="DEBUG", workers=8)
    config_path = tmp_path / f"processor-{uuid.uuid4().hex[:6]}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "kube_taskqueue.cli", "run", "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(SUPPORT), "RECORD_FILE": str(records.path)},
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: len(set(records.ids("done"))) == count, timeout=120)
        wait_for(lambda: queues.counts("work") == (0, 0), timeout=60)
        assert process.poll() is None
        # Now read it: the lines held back meanwhile all arrive, none dropped.
        process.send_signal(signal.SIGTERM)
        _, output = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0
    done = [line for line in json_lines(output.decode()) if line["message"] == "task done"]
    assert len(done) == count
