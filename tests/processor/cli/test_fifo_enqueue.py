"""`kube-taskqueue enqueue` on FIFO queues, against moto over HTTP: --group-id and
--deduplication-id reach SQS as MessageGroupId / MessageDeduplicationId (the operator's
CronJob form), and a missing one is one line naming the option to add."""

from __future__ import annotations

import pytest
import yaml
from harness import REGION, processor_config

FIFO_APP = """\
from pydantic import BaseModel
from kube_taskqueue import Provider


class Empty(BaseModel):
    pass


provider = Provider()


@provider.task("tick:job", queue="ticks.fifo")
def tick(payload: Empty) -> None: ...
"""


@pytest.fixture
def fifo_config(tmp_path, sqs_endpoint, prefix):
    (tmp_path / "fifoapp.py").write_text(FIFO_APP)
    data = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="fifoapp:provider")
    data["queues"] = {"ticks.fifo": {"pollInterval": 1}}
    path = tmp_path / "fifo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def fifo_queue(sqs, prefix):
    # No content-based deduplication: every message needs an explicit deduplication id.
    return sqs.create_queue(QueueName=f"{prefix}ticks.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]


def receive_all(sqs, url):
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def test_the_cronjob_form_sends_group_and_deduplication_ids(cli, fifo_config, fifo_queue, sqs):
    # What the operator's CronJob runs: the task name as group, the Job's name as dedup id.
    args = ["enqueue", "--config", str(fifo_config), "--name=tick:job"]
    ids = ["--group-id=tick:job", "--deduplication-id=accounts-tick-job-29012345"]
    first = cli(*args, *ids, "{}")
    again = cli(*args, *ids, "{}")  # a retried Job pod: SQS drops the duplicate
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    [message] = receive_all(sqs, fifo_queue)
    assert message["MessageId"] == first.stdout.strip()
    assert message["Attributes"]["MessageGroupId"] == "tick:job"
    assert message["Attributes"]["MessageDeduplicationId"] == "accounts-tick-job-29012345"
    assert message["MessageAttributes"]["JobName"]["StringValue"] == "tick:job"


def test_a_fifo_queue_without_group_id_is_one_line_naming_the_option(
    cli, fifo_config, fifo_queue, sqs
):
    result = cli("enqueue", "--config", str(fifo_config), "--name", "tick:job", "{}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("kube-taskqueue: error: queue 'ticks.fifo' (SQS queue ")
    assert "is a FIFO queue: give --group-id" in line
    assert receive_all(sqs, fifo_queue) == []


def test_a_fifo_queue_without_deduplication_id_names_that_option(cli, fifo_config, fifo_queue, sqs):
    result = cli(
        "enqueue", "--config", str(fifo_config), "--name", "tick:job", "--group-id", "g", "{}"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "give --deduplication-id" in line
    assert receive_all(sqs, fifo_queue) == []


def test_a_deduplication_id_on_a_standard_queue_is_refused_before_sending(
    cli, tmp_path, sqs_endpoint, prefix, queues
):
    queues.create("work")
    path = tmp_path / "processor.yaml"
    path.write_text(yaml.safe_dump(processor_config(endpoint=sqs_endpoint, prefix=prefix)))
    result = cli(
        "enqueue",
        "--config",
        str(path),
        "--name",
        "record:job",
        "--deduplication-id",
        "d",
        '{"id": "x"}',
    )
    assert result.returncode == 2
    assert "is a standard queue: --deduplication-id is only for FIFO queues" in result.stderr
    assert queues.counts("work") == (0, 0)


def test_a_task_builder_still_has_the_last_word_over_the_seeded_ids(sqs_endpoint, prefix, sqs):
    from kube_taskqueue import Producer, SendRequest, SqsSettings, Task
    from pydantic import BaseModel

    class Empty(BaseModel):
        pass

    class Grouped(Task[Empty]):
        name = "grouped:job"
        queue = "grouped.fifo"
        payload_model = Empty

        def build_message(self, payload: Empty, request: SendRequest) -> SendRequest:
            assert request.group_id == "from-caller"  # the caller's ids arrive seeded
            request.group_id = "from-task"
            return request

    url = sqs.create_queue(
        QueueName=f"{prefix}grouped.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    producer = Producer.from_settings(
        SqsSettings(endpoint=sqs_endpoint, region=REGION, queuePrefix=prefix)
    )
    producer.enqueue(Grouped(), {}, group_id="from-caller")
    [message] = receive_all(sqs, url)
    assert message["Attributes"]["MessageGroupId"] == "from-task"


def test_enqueue_many_checks_every_message_before_sending_any(sqs_endpoint, prefix, sqs):
    from kube_taskqueue import Producer, SendRequest, SqsSettings, Task
    from kube_taskqueue.producer import QueueKindError
    from pydantic import BaseModel

    class Item(BaseModel):
        group: str | None = None

    class Sometimes(Task[Item]):
        name = "sometimes:job"
        queue = "sometimes.fifo"
        payload_model = Item

        def build_message(self, payload: Item, request: SendRequest) -> SendRequest:
            request.group_id = payload.group
            return request

    url = sqs.create_queue(
        QueueName=f"{prefix}sometimes.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    producer = Producer.from_settings(
        SqsSettings(endpoint=sqs_endpoint, region=REGION, queuePrefix=prefix)
    )
    with pytest.raises(QueueKindError, match="is a FIFO queue: every message needs a group id"):
        producer.enqueue_many(Sometimes(), [{"group": "a"}, {}])
    assert receive_all(sqs, url) == []
