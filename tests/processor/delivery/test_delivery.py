"""End to end against moto's SQS server over HTTP: enqueue → process → delete, retries,
dead-lettering, visibility extension, and messages this processor cannot handle."""

from __future__ import annotations

import json
import time

import sampleapp
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings
from kube_taskqueue.config import ProcessorConfig


def make_producer(endpoint: str, prefix: str) -> Producer:
    return Producer.from_settings(SqsSettings(endpoint=endpoint, queuePrefix=prefix))


def test_enqueued_task_is_processed_once_and_deleted(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work")
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    producer = make_producer(sqs_endpoint, prefix)
    message_id = producer.enqueue(sampleapp.provider["record:job"], {"id": "m1"})
    assert message_id
    producer.enqueue(sampleapp.provider["record_async:job"], {"id": "m2", "sleep": 0.1})
    producer.enqueue(sampleapp.provider["other:job"], {"n": 7})
    wait_for(lambda: sorted(records.ids("done")) == ["m1", "m2", "other-7"])
    wait_for(lambda: queues.counts("work") == (0, 0) and queues.counts("other") == (0, 0))
    assert processor.snapshot()["deleted"] == 3
    assert records.ids("start").count("m1") == 1


def test_enqueue_many_sends_in_batches_and_all_are_processed(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work")
    queues.create("other")
    producer = make_producer(sqs_endpoint, prefix)
    result = producer.enqueue_many(
        sampleapp.provider["record:job"], [{"id": f"b{i}"} for i in range(25)]
    )
    assert result.ok
    assert [sent.index for sent in result.sent] == list(range(25))
    start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    wait_for(lambda: len(set(records.ids("done"))) == 25)
    wait_for(lambda: queues.counts("work") == (0, 0))
    assert len(records.ids("done")) == 25


def test_failing_task_is_retried_on_the_same_message_then_dead_lettered(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=3)
    queues.create("other")
    start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    make_producer(sqs_endpoint, prefix).enqueue(
        sampleapp.provider["record:job"], {"id": "doomed", "fail_times": 99}
    )
    dead = wait_for(lambda: queues.drain("work-dlq", wait=0.3), timeout=40)
    assert [json.loads(m["Body"])["id"] for m in dead] == ["doomed"]
    # Retries reuse one SQS message: the receive count grew 1, 2, 3 on the same message.
    assert [count for event, item, _, count in records.events() if event == "fail"] == [1, 2, 3]
    assert dead[0]["MessageAttributes"]["JobName"]["StringValue"] == "record:job"


def test_a_task_that_fails_then_succeeds_is_deleted(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=5)
    queues.create("other")
    start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    make_producer(sqs_endpoint, prefix).enqueue(
        sampleapp.provider["record:job"], {"id": "flaky", "fail_times": 1}
    )
    wait_for(lambda: records.ids("done") == ["flaky"], timeout=20)
    assert records.ids("fail") == ["flaky"]
    wait_for(lambda: queues.counts("work") == (0, 0))


def test_error_handler_may_delete_a_failed_message(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work", max_receive_count=2)
    queues.create("other")
    start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    make_producer(sqs_endpoint, prefix).enqueue(
        sampleapp.provider["record:job"],
        {"id": "drop", "fail_times": 99, "delete_on_failure": True},
    )
    wait_for(lambda: records.ids("fail") == ["drop"])
    wait_for(lambda: queues.counts("work") == (0, 0))
    assert queues.drain("work-dlq", wait=0.5) == []
    assert records.ids("fail") == ["drop"]


def test_a_task_longer_than_the_visibility_window_runs_exactly_once(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work")
    queues.create("other")
    config = processor_config(
        endpoint=sqs_endpoint,
        prefix=prefix,
        queues={"work": {"pollInterval": 1, "messageVisibilityTimeout": 2}},
    )
    processor = start_processor(config)
    make_producer(sqs_endpoint, prefix).enqueue(
        sampleapp.provider["record:job"], {"id": "long", "sleep": 6}
    )
    wait_for(lambda: records.ids("done") == ["long"], timeout=30)
    assert records.ids("start") == ["long"], "the message was handed to a second worker"
    extended = processor.metrics.extended.labels(queue="work")._value.get()
    assert extended >= 3


def test_unroutable_and_malformed_messages_are_never_deleted_silently(
    sqs_endpoint, prefix, queues, records, start_processor
):
    work = queues.create("work", max_receive_count=2)
    queues.create("other")
    settings = {"pollInterval": 1, "messageVisibilityTimeout": 10, "retryBackoffInitial": 0}
    processor = start_processor(
        processor_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            queues={"work": {**settings, "unknownTaskDelay": 0}, "other": settings},
        )
    )
    sqs = queues.sqs

    def send(body: str, job: str | None) -> str:
        attributes = {"JobName": {"DataType": "String", "StringValue": job}} if job else {}
        return sqs.send_message(QueueUrl=work, MessageBody=body, MessageAttributes=attributes)[
            "MessageId"
        ]

    poison = {
        send('{"id": "x"}', "nope:job"),  # a task this processor does not know
        send("not json", "record:job"),  # a body that is not JSON
        send('{"id": 5}', "record:job"),  # a body of the wrong shape
        send('{"id": "y"}', None),  # no JobName at all
    }
    make_producer(sqs_endpoint, prefix).enqueue(sampleapp.provider["record:job"], {"id": "good"})
    wait_for(lambda: records.ids("done") == ["good"])
    dead: dict[str, dict] = {}

    def all_dead_lettered() -> bool:
        # drain() hides what it receives, so collect across calls.
        dead.update({m["MessageId"]: m for m in queues.drain("work-dlq", wait=0.3)})
        return len(dead) == 4

    wait_for(all_dead_lettered, timeout=40)
    assert set(dead) == poison
    counts = processor.snapshot()
    assert counts["unroutable"] >= 8  # each poison message was seen twice before the DLQ
    assert records.ids("start") == ["good"]


def test_a_processor_handles_only_its_assigned_queues(
    sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work")
    queues.create("other")
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, tasks=["other:job"])
    processor = start_processor(config)
    assert [p.queue for p in processor.pollers] == ["other"]
    producer = make_producer(sqs_endpoint, prefix)
    producer.enqueue(sampleapp.provider["record:job"], {"id": "not-mine"})
    producer.enqueue(sampleapp.provider["other:job"], {"n": 1})
    wait_for(lambda: records.ids("done") == ["other-1"])
    assert queues.counts("work") == (1, 0)
    assert ProcessorConfig.model_validate(config).tasks == ["other:job"]


def test_a_task_added_by_a_rollout_waits_out_the_old_pods_instead_of_dead_lettering(
    sqs_endpoint, prefix, queues, records, start_processor
):
    """An old pod receives a message of a task it does not run yet: hidden for the queue's
    unknownTaskDelay (longer than a failure's retry), so few receives count towards the
    dead-letter queue while the old pods run; the new revision then runs it."""
    queues.create("work", max_receive_count=3)
    queues.create("other")
    settings = {"pollInterval": 1, "messageVisibilityTimeout": 10, "retryBackoffInitial": 0}
    old = start_processor(
        processor_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            app="sampleapp:previous_release",
            queues={"work": {**settings, "unknownTaskDelay": 4}, "other": settings},
        )
    )
    make_producer(sqs_endpoint, prefix).enqueue(
        sampleapp.provider["record_async:job"], {"id": "new"}
    )
    wait_for(lambda: old.snapshot()["unroutable"] == 1, timeout=20)
    # With the failure backoff (0 s) it would be received again at once, and dead-lettered
    # after 3 receives; hidden for unknownTaskDelay, it is still in flight 2 s later.
    time.sleep(2)
    assert old.snapshot()["unroutable"] == 1
    assert queues.counts("work") == (0, 1)
    old.stop()
    start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix, queues={
        "work": settings, "other": settings,
    }))  # fmt: skip
    wait_for(lambda: records.ids("done") == ["new"], timeout=30)
    assert queues.drain("work-dlq", wait=0.3) == []
