"""Redrive of FIFO dead letters (group ids kept, order kept, fresh deduplication ids) on moto,
and SQS's own message move task on ElasticMQ, which offers it (moto does not)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from harness import REGION, processor_config
from kube_taskqueue.ops import deadletters
from kube_taskqueue.ops.deadletters import Selection
from kube_taskqueue.ops.journal import RedriveJournal

from bench.sqsserver import sqs_server


def _with_dead_letters(sqs: Any, name: str, *, fifo: bool) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true"} if fifo else {}
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=extra)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})
    url = sqs.create_queue(
        QueueName=f"{name}{suffix}", Attributes={**extra, "RedrivePolicy": policy}
    )["QueueUrl"]
    return url, dlq


def test_fifo_dead_letters_keep_their_group_and_order(sqs, prefix, tmp_path):
    url, dlq = _with_dead_letters(sqs, f"{prefix}orders", fifo=True)
    for group in ("a", "b"):
        for index in range(4):
            sqs.send_message(
                QueueUrl=dlq,
                MessageBody=f"{group}{index}",
                MessageGroupId=group,
                MessageDeduplicationId=f"orig-{group}{index}",
                MessageAttributes={"JobName": {"DataType": "String", "StringValue": "o:job"}},
            )
    pair = deadletters.locate(sqs, queue="orders", url=url)
    assert pair.fifo
    summary = deadletters.redrive(
        sqs, pair, Selection(), journal=RedriveJournal(tmp_path / "journal.jsonl")
    )
    assert (summary.moved, summary.failed) == (8, 0)
    by_group: dict[str, list[str]] = {"a": [], "b": []}
    dedup_ids = set()
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            by_group[message["Attributes"]["MessageGroupId"]].append(message["Body"])
            dedup_ids.add(message["Attributes"]["MessageDeduplicationId"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert by_group == {"a": ["a0", "a1", "a2", "a3"], "b": ["b0", "b1", "b2", "b3"]}
    # Fresh ids: the originals would be dropped by SQS within its 5-minute window.
    assert not any(i.startswith("orig-") for i in dedup_ids) and len(dedup_ids) == 8


@pytest.fixture(scope="module")
def elasticmq() -> Iterator[str]:
    with sqs_server("elasticmq") as (endpoint, name):
        assert name.startswith("ElasticMQ"), f"ElasticMQ did not start ({name} instead)"
        yield endpoint


def test_without_a_filter_sqs_moves_them_itself_where_it_can(elasticmq, prefix, tmp_path, cli):
    sqs = boto3.client("sqs", endpoint_url=elasticmq, region_name=REGION)
    url, dlq = _with_dead_letters(sqs, f"{prefix}work", fifo=False)
    _with_dead_letters(sqs, f"{prefix}other", fifo=False)
    attributes = {
        "JobName": {"DataType": "String", "StringValue": "record:job"},
        "TraceId": {"DataType": "String", "StringValue": "t-1"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    for index in range(5):
        sqs.send_message(
            QueueUrl=dlq, MessageBody=f'{{"id": "e{index}"}}', MessageAttributes=attributes
        )
    config = tmp_path / "processor.yaml"
    config.write_text(yaml.safe_dump(processor_config(endpoint=elasticmq, prefix=prefix)))
    result = cli("dlq", "redrive", "--config", str(config), "work", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "moved 5" in result.stdout and "path: SQS message move task" in result.stdout
    copies = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert len(copies) == 5
    for copy in copies:
        kept = {
            k: {f: v[f] for f in v if f in ("DataType", "StringValue", "BinaryValue")}
            for k, v in copy["MessageAttributes"].items()
        }
        assert kept == attributes
