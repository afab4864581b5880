"""Tasks sent for later: SQS's DelaySeconds up to 15 minutes; beyond, a due time the
processor honours by hiding the message again (a hold, or a fresh copy near the dead-letter
threshold or the due time) without running it early or counting a failure. Against moto's
SQS server over HTTP with a processor running in this test process."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sampleapp
import yaml
from harness import processor_config, wait_for
from kube_taskqueue import DelayError, Producer, SqsSettings
from kube_taskqueue.runtime.deferral import Hold, QueueFacts, Resend, plan
from kube_taskqueue.task import DUE_AT_ATTRIBUTE

RECORD = sampleapp.provider["record:job"]


def producer(endpoint: str, prefix: str) -> Producer:
    return Producer.from_settings(SqsSettings(endpoint=endpoint, queuePrefix=prefix))


def delayed(queues: Any, name: str) -> int:
    attributes = queues.sqs.get_queue_attributes(
        QueueUrl=queues.url(name), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def deferred(processor: Any, hop: str) -> float:
    value = processor.metrics.registry.get_sample_value(
        "taskqueue_messages_deferred_total", {"queue": "work", "hop": hop}
    )
    return value or 0.0


# -- sending -------------------------------------------------------------------------------


def test_short_delays_are_sqs_delay_seconds(sqs_endpoint, prefix, queues):
    queues.create("work")
    send = producer(sqs_endpoint, prefix)
    request = send.build_request(RECORD, {"id": "x"}, due=time.time() + 30)
    assert (
        29 <= request["DelaySeconds"] <= 30 and DUE_AT_ATTRIBUTE not in request["MessageAttributes"]
    )
    send.enqueue(RECORD, {"id": "later"}, delay=timedelta(seconds=30))
    assert delayed(queues, "work") == 1 and queues.counts("work") == (0, 0)


def test_long_delays_carry_their_due_time(sqs_endpoint, prefix, queues):
    queues.create("work")
    send = producer(sqs_endpoint, prefix)
    eta = datetime.now(UTC) + timedelta(hours=2)
    send.enqueue(RECORD, {"id": "eta"}, eta=eta)
    request = send.build_request(RECORD, {"id": "x"}, due=eta.timestamp())
    assert request["DelaySeconds"] == 900
    due = request["MessageAttributes"][DUE_AT_ATTRIBUTE]
    assert due["DataType"] == "Number" and abs(int(due["StringValue"]) / 1000 - eta.timestamp()) < 1
    assert delayed(queues, "work") == 1


def test_per_message_delays_in_one_batch(sqs_endpoint, prefix, queues):
    queues.create("work")
    result = producer(sqs_endpoint, prefix).enqueue_many(
        RECORD,
        [{"id": "a"}, {"id": "b"}, {"id": "c"}],
        delays=[None, timedelta(minutes=5), datetime.now(UTC) + timedelta(days=1)],
    )
    assert result.ok
    assert queues.counts("work")[0] == 1 and delayed(queues, "work") == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": timedelta(days=15)}, "longer than 14 days"),
        ({"eta": datetime(2030, 1, 1)}, "has no timezone"),
        ({"delay": timedelta(1), "eta": datetime.now(UTC)}, "not both"),
    ],
)
def test_delays_that_cannot_be_kept_are_refused_before_sending(
    sqs_endpoint, prefix, queues, options, message
):
    queues.create("work")
    with pytest.raises(DelayError, match=message):
        producer(sqs_endpoint, prefix).enqueue(RECORD, {"id": "x"}, **options)
    assert queues.counts("work") == (0, 0) and delayed(queues, "work") == 0


def test_fifo_queues_have_no_per_message_delay(sqs_endpoint, prefix, sqs):
    sqs.create_queue(QueueName=f"{prefix}work.fifo", Attributes={"FifoQueue": "true"})
    send = Producer.from_settings(
        SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix),
        queue_urls={"work": sqs.get_queue_url(QueueName=f"{prefix}work.fifo")["QueueUrl"]},
    )
    with pytest.raises(DelayError, match="SQS has no per-message delay on FIFO queues"):
        send.enqueue(RECORD, {"id": "x"}, group_id="g", delay=timedelta(minutes=1))


def test_the_cli_sends_for_later(sqs_endpoint, prefix, queues, tmp_path: Path, cli):
    queues.create("work")
    queues.create("other")
    config = tmp_path / "processor.yaml"
    config.write_text(yaml.safe_dump(processor_config(endpoint=sqs_endpoint, prefix=prefix)))

    def enqueue(*args: str) -> Any:
        return cli("enqueue", "--config", str(config), "--name=record:job", *args, '{"id": "cli"}')

    assert enqueue("--delay", "20m").returncode == 0
    assert enqueue("--at", (datetime.now(UTC) + timedelta(minutes=3)).isoformat()).returncode == 0
    assert delayed(queues, "work") == 2
    naive = enqueue("--at", "2030-01-01T10:00:00")
    assert naive.returncode == 2 and "has no timezone" in naive.stderr
    assert "Traceback" not in naive.stderr


# -- the processor's hops ------------------------------------------------------------------


FACTS = QueueFacts(max_receive_count=5, retention_seconds=345_600)


def test_the_last_hop_is_a_fresh_copy_landing_on_the_due_time():
    assert plan(remaining=600.2, receive_count=1, age_seconds=0, facts=FACTS) == Resend(601)


def test_long_waits_hold_in_twelve_hour_steps_leaving_the_last_fifteen_minutes():
    assert plan(remaining=3 * 86_400, receive_count=1, age_seconds=0, facts=FACTS) == Hold(43_200)
    assert plan(remaining=3_600, receive_count=1, age_seconds=0, facts=FACTS) == Hold(2_700)


def test_a_hold_that_would_reach_the_dead_letter_threshold_is_a_resend():
    assert plan(remaining=3_600, receive_count=4, age_seconds=0, facts=FACTS) == Resend(900)
    no_dlq = QueueFacts(max_receive_count=None, retention_seconds=345_600)
    assert plan(remaining=3_600, receive_count=40, age_seconds=0, facts=no_dlq) == Hold(2_700)


def test_a_hold_past_the_retention_period_is_a_resend():
    short = QueueFacts(max_receive_count=5, retention_seconds=3_600)
    assert plan(remaining=7_200, receive_count=1, age_seconds=1_000, facts=short) == Resend(900)


def _early(queues: Any, name: str, due_in: float) -> None:
    """A message that arrives before it is due (as a long delay's does after 15 minutes)."""
    queues.sqs.send_message(
        QueueUrl=queues.url(name),
        MessageBody=json.dumps({"id": "early"}),
        MessageAttributes={
            "JobName": {"DataType": "String", "StringValue": "record:job"},
            DUE_AT_ATTRIBUTE: {
                "DataType": "Number",
                "StringValue": str(int((time.time() + due_in) * 1000)),
            },
        },
    )


def test_a_message_due_soon_runs_on_time_on_a_fresh_copy(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=3)
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    sent = time.time()
    _early(queues, "work", due_in=3)
    wait_for(lambda: records.ids("done") == ["early"], timeout=30)
    assert time.time() - sent >= 2.5  # not run early
    assert deferred(processor, "resend") == 1 and deferred(processor, "hold") == 0
    assert processor.snapshot()["failed"] == 0
    starts = [row for row in records.events() if row[0] == "start"]
    assert [row[3] for row in starts] == [1]  # run at receive count 1: its whole retry budget
    assert queues.counts("work-dlq") == (0, 0)


def test_a_message_due_in_an_hour_is_held_not_run(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=5)
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    _early(queues, "work", due_in=3_600)
    wait_for(lambda: deferred(processor, "hold") == 1)
    time.sleep(1)
    assert queues.counts("work") == (0, 1)  # hidden for the next 45 minutes
    assert records.ids("start") == []
    snapshot = processor.snapshot()
    assert snapshot["failed"] == 0 and snapshot["in_flight"] == 0


def test_near_the_dead_letter_threshold_a_waiting_message_is_copied_afresh(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=2)
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    _early(queues, "work", due_in=3_600)
    wait_for(lambda: deferred(processor, "resend") == 1)
    wait_for(lambda: queues.counts("work") == (0, 0) and delayed(queues, "work") == 1)
    assert queues.counts("work-dlq") == (0, 0) and records.ids("start") == []


def test_the_age_metric_counts_the_wait_and_leaves_out_tasks_sent_for_later(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=5)
    queues.create("other")
    producer(sqs_endpoint, prefix).enqueue(RECORD, {"id": "waited"})
    time.sleep(1.2)  # it waits in the queue before any processor runs
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    wait_for(lambda: records.ids("done") == ["waited"])
    _early(queues, "work", due_in=3_600)
    wait_for(lambda: deferred(processor, "hold") == 1)
    registry = processor.metrics.registry
    labels = {"queue": "work"}
    assert registry.get_sample_value("taskqueue_message_age_seconds_count", labels) == 1
    assert registry.get_sample_value("taskqueue_message_age_seconds_sum", labels) >= 1.0
