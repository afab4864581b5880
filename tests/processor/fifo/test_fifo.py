"""FIFO queues end to end: group and deduplication ids derived from the payload, one message
of a group at a time and in order, and a failure that blocks only its own group. Against
moto's server (which locks a group while one of its messages is in flight, as SQS does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pydantic
import pytest
import yaml
from harness import SUPPORT, processor_config, wait_for
from kube_taskqueue import Producer, Provider, SqsSettings

sys.path.insert(0, str(Path(__file__).parent))

import fifoapp  # importable once its directory is on the path

POST = fifoapp.provider["ledger:post"]


@pytest.fixture
def ledger(sqs, prefix) -> str:
    dlq = sqs.create_queue(QueueName=f"{prefix}ledger-dlq.fifo", Attributes={"FifoQueue": "true"})
    arn = sqs.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])
    policy = f'{{"deadLetterTargetArn": "{arn["Attributes"]["QueueArn"]}", "maxReceiveCount": "5"}}'
    return str(
        sqs.create_queue(
            QueueName=f"{prefix}ledger.fifo",
            Attributes={"FifoQueue": "true", "RedrivePolicy": policy},
        )["QueueUrl"]
    )


def producer(endpoint: str, prefix: str) -> Producer:
    return Producer.from_settings(SqsSettings(endpoint=endpoint, queuePrefix=prefix))


def test_group_and_deduplication_ids_come_from_the_payload(sqs_endpoint, prefix, ledger, sqs):
    send = producer(sqs_endpoint, prefix)
    send.enqueue(POST, {"account": "acme", "id": "e1"})
    send.enqueue(POST, {"account": "acme", "id": "e1"})  # the same id: SQS drops it
    result = send.enqueue_many(
        POST, [{"account": "zeta", "id": "e2"}, {"account": "acme", "id": "e3"}]
    )
    assert result.ok
    got = sqs.receive_message(
        QueueUrl=ledger, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    by_id = {
        m["Attributes"]["MessageDeduplicationId"]: m["Attributes"]["MessageGroupId"] for m in got
    }
    # The second e1 was dropped by SQS's deduplication; one receive may bring several
    # messages of one group, in order (the processor runs those on one worker).
    assert len(got) == 3 and by_id == {"e1": "acme", "e3": "acme", "e2": "zeta"}


def test_a_sender_given_group_id_wins(sqs_endpoint, prefix, ledger, sqs):
    producer(sqs_endpoint, prefix).enqueue(POST, {"account": "acme", "id": "x"}, group_id="manual")
    [message] = sqs.receive_message(QueueUrl=ledger, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    assert message["Attributes"]["MessageGroupId"] == "manual"


def test_a_rule_naming_no_payload_field_is_refused_when_the_task_is_defined():
    provider = Provider()

    class Payload(pydantic.BaseModel):
        account: str

    with pytest.raises(ValueError, match="group_by='acount' is not a field of its payload model"):

        @provider.task("x:job", queue="x.fifo", payload_model=Payload, group_by="acount")
        def job(payload: Payload) -> None: ...


def test_the_cli_sends_to_a_fifo_queue_without_ids_when_the_task_derives_them(
    sqs_endpoint, prefix, ledger, sqs, tmp_path, cli
):
    config = tmp_path / "processor.yaml"
    data = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="fifoapp:provider")
    data["queues"] = {"ledger.fifo": {"pollInterval": 1}}
    config.write_text(yaml.safe_dump(data))
    here = os.pathsep.join([str(SUPPORT), str(Path(__file__).parent)])
    result = cli(
        "enqueue",
        "--config",
        str(config),
        "--name=ledger:post",
        '{"account": "acme", "id": "cli-1"}',
        env={"PYTHONPATH": here},
    )
    assert result.returncode == 0, result.stderr
    [message] = sqs.receive_message(QueueUrl=ledger, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    assert message["Attributes"]["MessageGroupId"] == "acme"


def test_one_at_a_time_in_order_and_a_failure_blocks_only_its_group(
    sqs_endpoint, prefix, ledger, start_processor
):
    fifoapp.events.clear()
    fifoapp.peak.clear()
    fifoapp.fail_once.clear()
    fifoapp.fail_once.add("a2")
    send = producer(sqs_endpoint, prefix)
    send.enqueue_many(POST, [{"account": "a", "id": f"a{i}"} for i in range(1, 6)])
    send.enqueue_many(POST, [{"account": "b", "id": f"b{i}"} for i in range(1, 6)])
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="fifoapp:provider")
    config["workers"] = 4
    config["queues"] = {
        "ledger.fifo": {
            "pollInterval": 1,
            "messageVisibilityTimeout": 10,
            "maxBatchSize": 10,
            "retryBackoffInitial": 2,
            "retryBackoffMax": 2,
        }
    }
    processor = start_processor(config)
    wait_for(lambda: len([e for e in fifoapp.events if e[0] == "done"]) == 10, timeout=60)
    done = [e[1] for e in fifoapp.events if e[0] == "done"]
    assert [i for i in done if i.startswith("a")] == ["a1", "a2", "a3", "a4", "a5"]
    assert [i for i in done if i.startswith("b")] == ["b1", "b2", "b3", "b4", "b5"]
    assert fifoapp.peak == {"a": 1, "b": 1}  # never two of one group at once
    starts = [e[1] for e in fifoapp.events if e[0] == "start"]
    assert starts.count("a2") == 2 and starts.count("a3") == 1
    # a3 started only after a2 had succeeded; group b did not wait for a2's retry.
    assert starts.index("a3") > done.index("a2") and done.index("b5") < done.index("a2")
    assert processor.snapshot()["failed"] == 1
