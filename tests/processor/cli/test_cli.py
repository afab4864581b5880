"""The `kube-taskqueue` console script: run, enqueue and dev, with their exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import SUPPORT, processor_config

# The console script installed next to this interpreter, as a user runs it.
TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"


def taskqueue(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKQUEUE), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(SUPPORT)},
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def config_file(tmp_path, sqs_endpoint, prefix):
    path = tmp_path / "processor.yaml"
    path.write_text(yaml.safe_dump(processor_config(endpoint=sqs_endpoint, prefix=prefix)))
    return path


def test_enqueue_prints_the_message_id_and_sends_routing(config_file, tmp_path, queues):
    queues.create("work")
    result = taskqueue(
        "enqueue",
        "--config",
        str(config_file),
        "--name",
        "record:job",
        '{"id": "cli"}',
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    message_id = result.stdout.strip()
    [message] = queues.drain("work", wait=0.5)
    assert message["MessageId"] == message_id
    assert message["MessageAttributes"]["JobName"]["StringValue"] == "record:job"
    assert message["MessageAttributes"]["TraceId"]["StringValue"]


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("nope:job", "{}", "unknown task 'nope:job'"),
        ("record:job", "{not json", "the payload is not valid JSON"),
        ("record:job", "[1, 2]", "the payload must be a JSON object, got list"),
        (
            "record:job",
            '{"id": 5}',
            "payload of task 'record:job' is invalid: id: Input should be a valid string",
        ),
    ],
)
def test_enqueue_refuses_bad_input_and_sends_nothing(
    config_file, tmp_path, queues, name, payload, expected
):
    queues.create("work")
    result = taskqueue(
        "enqueue", "--config", str(config_file), "--name", name, payload, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.startswith("kube-taskqueue: error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert queues.counts("work") == (0, 0)


def test_enqueue_to_a_missing_queue_is_a_clear_error(config_file, tmp_path):
    result = taskqueue(
        "enqueue", "--config", str(config_file), "--name", "record:job", '{"id": "x"}', cwd=tmp_path
    )
    assert result.returncode == 1
    assert "SQS refused the message" in result.stderr and "NonExistentQueue" in result.stderr


def test_run_refuses_an_invalid_config_naming_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("app: sampleapp:provider\nqueues:\n  work: {maxBatchSize: 11}\n")
    result = taskqueue("run", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "queues.work.maxBatchSize" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_a_split_queue_naming_queue_tasks_and_processor(tmp_path, sqs_endpoint, prefix):
    path = tmp_path / "split.yaml"
    config = processor_config(
        endpoint=sqs_endpoint, prefix=prefix, tasks=["record:job", "other:job"]
    )
    config["processor"] = "main"
    path.write_text(yaml.safe_dump(config))
    result = taskqueue("run", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert (
        "queue 'work' would be split: processor 'main' polls it for record:job "
        "but not for record_async:job" in result.stderr
    )


def test_dev_runs_the_example_app_against_an_embedded_sqs(tmp_path):
    result = taskqueue(
        "dev", "--demo", "2", "--duration", "8", "--http-port", "0", cwd=tmp_path, timeout=90
    )
    assert result.returncode == 0, result.stderr
    assert "embedded SQS at http://127.0.0.1:" in result.stdout
    assert "kube-taskqueue enqueue --config" in result.stdout
    progress = [line for line in result.stdout.splitlines() if line.startswith("processed ")]
    assert progress, result.stdout
    processed = int(progress[-1].split()[1])
    assert processed >= 3  # 2 example + 1 report always succeed; cleanup fails at random
