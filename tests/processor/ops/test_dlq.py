"""`kube-taskqueue dlq` against moto's SQS server over HTTP: peek leaves everything in place,
redrive keeps every attribute, survives being killed, and feeds a running processor; purge
asks first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import SUPPORT, processor_config, wait_for

DLQ = "work-dlq"


def attributes(task: str, index: int) -> dict[str, Any]:
    return {
        "JobName": {"DataType": "String", "StringValue": task},
        "TraceId": {"DataType": "String", "StringValue": f"trace-{index}"},
        "tenant": {"DataType": "String.custom", "StringValue": "acme ✓"},
        "blob": {"DataType": "Binary", "BinaryValue": bytes([index % 256, 0, 255])},
        "weight": {"DataType": "Number", "StringValue": str(index)},
    }


def fill(queues: Any, tasks: list[str]) -> list[str]:
    """Dead letters in work-dlq, one per task name given; returns their bodies."""
    url = queues.url(DLQ)
    bodies = []
    for index, task in enumerate(tasks):
        body = json.dumps({"id": f"d{index}"})
        queues.sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageAttributes=attributes(task, index)
        )
        bodies.append(body)
    return bodies


def drain(queues: Any, name: str) -> list[dict[str, Any]]:
    """Every message of a queue, deleted as read."""
    url = queues.url(name)
    found: list[dict[str, Any]] = []
    empty = 0
    while empty < 3:
        batch = queues.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        empty = 0 if batch else empty + 1
        for message in batch:
            found.append(message)
            queues.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


@pytest.fixture
def config_file(tmp_path: Path, sqs_endpoint: str, prefix: str, queues: Any) -> Path:
    queues.create("work", max_receive_count=3)
    queues.create("other")
    path = tmp_path / "processor.yaml"
    path.write_text(yaml.safe_dump(processor_config(endpoint=sqs_endpoint, prefix=prefix)))
    return path


@pytest.fixture
def dlq(cli: Any) -> Any:
    """`dlq(*args, env=...)`: `kube-taskqueue dlq ...` as a user runs it."""
    return lambda *args, env=None: cli("dlq", *args, env=env, timeout=120)


def test_peek_shows_dead_letters_and_leaves_everything_in_place(config_file, queues, dlq):
    fill(queues, ["record:job", "other:job", "record:job"])
    result = dlq("peek", "--config", str(config_file), "work", "--json")
    assert result.returncode == 0, result.stderr
    shown = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(m["task"] for m in shown) == ["other:job", "record:job", "record:job"]
    assert {m["traceId"] for m in shown} == {"trace-0", "trace-1", "trace-2"}
    assert all(m["receiveCount"] >= 1 and m["sent"] for m in shown)
    filtered = dlq("peek", "--config", str(config_file), "work", "--task", "other:job", "--json")
    assert [json.loads(line)["task"] for line in filtered.stdout.splitlines()] == ["other:job"]
    assert queues.counts(DLQ) == (3, 0)  # given back at once, none deleted
    assert queues.counts("work") == (0, 0)  # the source queue is never read


def test_stats_counts_and_breaks_down_by_task(config_file, queues, dlq):
    fill(queues, ["record:job", "other:job", "record:job"])
    result = dlq("stats", "--config", str(config_file), "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["queue"]: row for row in json.loads(result.stdout)}
    assert list(rows) == ["work"]  # `other` has no dead-letter queue
    work = rows["work"]
    assert work["deadLetters"] == 3 and work["deadLetterQueue"].endswith("work-dlq")
    assert work["deadLettersByTask"] == {"record:job": 2, "other:job": 1}
    assert work["oldestDeadLetter"]
    table = dlq("stats", "--config", str(config_file), "work", env={"COLUMNS": "200"})
    assert table.returncode == 0 and "record:job 2" in table.stdout
    no_dlq = dlq("stats", "--config", str(config_file), "other")
    assert no_dlq.returncode == 2
    assert "has no dead-letter queue" in no_dlq.stderr and "Traceback" not in no_dlq.stderr


def test_redrive_keeps_every_attribute_and_the_processor_runs_them(
    config_file, queues, records, start_processor, sqs_endpoint, prefix, dlq
):
    fill(queues, ["record:job", "other:job", "record:job"])
    sent = {
        m["MessageId"]: m for m in drain(queues, DLQ)
    }  # read them once to know exactly what was there
    for message in sent.values():
        queues.sqs.send_message(
            QueueUrl=queues.url(DLQ),
            MessageBody=message["Body"],
            MessageAttributes={
                k: {f: v for f, v in a.items() if f in ("DataType", "StringValue", "BinaryValue")}
                for k, a in message["MessageAttributes"].items()
            },
        )
    dry = dlq("redrive", "--config", str(config_file), "work", "--task", "record:job", "--dry-run")
    assert dry.returncode == 0 and "would move 2" in dry.stdout
    assert queues.counts(DLQ) == (3, 0)

    result = dlq("redrive", "--config", str(config_file), "work", "--task", "record:job")
    assert result.returncode == 0, result.stderr
    assert "moved 2" in result.stdout and "path: receive, send, delete" in result.stdout
    assert "1 not selected, left in place" in result.stdout
    copies = drain(queues, "work")
    originals = {m["Body"]: m for m in sent.values() if "record" in str(m["MessageAttributes"])}
    assert sorted(c["Body"] for c in copies) == sorted(originals)
    for copy in copies:
        original = originals[copy["Body"]]["MessageAttributes"]
        assert copy["MessageAttributes"] == original  # byte for byte, binary included
    [left] = drain(queues, DLQ)
    assert left["MessageAttributes"]["JobName"]["StringValue"] == "other:job"

    # Back in the DLQ, redriven again, and run by a processor this time.
    fill(queues, ["record:job"] * 3)
    assert dlq("redrive", "--config", str(config_file), "work").returncode == 0
    start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    wait_for(lambda: sorted(records.ids("done")) == ["d0", "d1", "d2"])
    assert queues.counts(DLQ) == (0, 0)


def test_without_a_filter_the_path_taken_is_named(config_file, queues, dlq):
    fill(queues, ["record:job"] * 2)
    result = dlq("redrive", "--config", str(config_file), "work")
    assert result.returncode == 0, result.stderr
    # moto does not offer StartMessageMoveTask: the tool moves them itself, and says so.
    assert "moved 2" in result.stdout and "path: receive, send, delete" in result.stdout
    assert len(drain(queues, "work")) == 2


def test_a_redrive_killed_after_sending_is_finished_by_a_rerun_without_duplicates(
    config_file, queues, tmp_path, dlq
):
    bodies = fill(queues, ["record:job"] * 25)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    crashed = dlq(
        "redrive",
        "--config",
        str(config_file),
        "work",
        "--visibility",
        "3",
        env={**env, "TASKQUEUE_REDRIVE_FAILPOINT": "after-send"},
    )
    assert crashed.returncode == 70
    journals = list((tmp_path / "cache" / "taskqueue" / "redrive").glob("*.jsonl"))
    assert len(journals) == 1  # the sent-but-not-deleted copies are on record
    assert queues.counts("work")[0] == 10  # one batch copied, its dead letters still there
    wait_for(lambda: queues.counts(DLQ) == (25, 0), timeout=30)  # the held ones are back
    rerun = dlq("redrive", "--config", str(config_file), "work", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "moved 25" in rerun.stdout
    moved = [m["Body"] for m in drain(queues, "work")]
    assert sorted(moved) == sorted(bodies)  # each exactly once: none lost, none twice
    assert queues.counts(DLQ) == (0, 0)
    assert not list((tmp_path / "cache" / "taskqueue" / "redrive").glob("*.jsonl"))


def test_a_redrive_killed_at_any_moment_loses_nothing(config_file, queues, tmp_path, dlq):
    bodies = fill(queues, ["record:job"] * 40)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kube_taskqueue.cli",
            "dlq",
            "redrive",
            "--config",
            str(config_file),
            "work",
            "--rate",
            "20",
            "--visibility",
            "3",
        ],
        env={**os.environ, "PYTHONPATH": str(SUPPORT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: queues.counts("work")[0] >= 10, timeout=60)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    wait_for(lambda: queues.counts(DLQ)[1] == 0, timeout=30)  # held ones come back
    rerun = dlq("redrive", "--config", str(config_file), "work", env=env)
    assert rerun.returncode == 0, rerun.stderr
    moved = [m["Body"] for m in drain(queues, "work")]
    assert set(moved) == set(bodies)  # at least once: none lost
    assert queues.counts(DLQ) == (0, 0)


def test_purge_asks_and_deletes_only_what_it_is_told(config_file, queues, dlq):
    fill(queues, ["record:job", "other:job", "record:job"])
    refused = dlq("purge", "--config", str(config_file), "work", "--task", "record:job")
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    assert queues.counts(DLQ) == (3, 0)
    done = dlq("purge", "--config", str(config_file), "work", "--task", "record:job", "--yes")
    assert done.returncode == 0 and "deleted 2" in done.stdout
    [left] = drain(queues, DLQ)
    assert left["MessageAttributes"]["JobName"]["StringValue"] == "other:job"


def test_usage_errors_are_one_line(config_file, queues, dlq):
    for args, expected in (
        (("peek", "--config", str(config_file)), "name the queue"),
        (("peek", "--config", str(config_file), "nope"), "has no queue 'nope'"),
        (("redrive", "--config", str(config_file), "work", "--older-than", "soon"), "duration"),
    ):
        result = dlq(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr
