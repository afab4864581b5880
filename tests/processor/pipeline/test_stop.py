"""Stopping a real `kube-taskqueue run`: no receive once stop begins, a repeated SIGTERM keeps
draining, a repeated Ctrl-C returns every held message before a quick exit."""

from __future__ import annotations

import signal

import pipelineapp
from harness import wait_for
from kube_taskqueue import Producer, SqsSettings
from pipelinesupport import pipeline_config

#: Long enough that nothing held comes back by itself while a test looks.
VISIBILITY = 60


def enqueue_blocking(endpoint: str, prefix: str, release, count: int) -> list[str]:
    ids = [f"b{i}" for i in range(count)]
    Producer.from_settings(SqsSettings(endpoint=endpoint, queuePrefix=prefix)).enqueue_many(
        pipelineapp.provider["block:job"], [{"id": i, "release": str(release)} for i in ids]
    )
    return ids


def test_no_receive_is_sent_once_stop_begins(
    sqs_endpoint, sqs_proxy, prefix, queues, records, release, spawn_pipeline
):
    url = queues.create("work", visibility=VISIBILITY)
    enqueue_blocking(sqs_endpoint, prefix, release, 3)
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_proxy.endpoint,
            prefix=prefix,
            workers=2,
            queues={"work": {"pollInterval": 20, "messageVisibilityTimeout": VISIBILITY}},
        )
    )
    process.wait_ready()
    wait_for(lambda: len(records.ids("start")) == 2)
    # Both workers busy: the poller waits for one, no receive is under way.
    wait_for(lambda: all(call.answered for call in sqs_proxy.of("ReceiveMessage")))
    before = len(sqs_proxy.of("ReceiveMessage"))
    process.signal(signal.SIGTERM)
    process.wait_output("shutting down")
    release.touch()  # the running tasks end, freeing their workers during the drain
    assert process.process.wait(30) == 0, process.output()
    assert len(records.ids("done")) == 2
    assert len(sqs_proxy.of("ReceiveMessage")) == before, "a receive was sent after SIGTERM"
    # The third message was never received by the processor: its first receive is ours.
    [message] = queues.sqs.receive_message(
        QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"


def test_a_second_sigterm_keeps_draining(
    sqs_endpoint, prefix, queues, records, release, spawn_pipeline
):
    queues.create("work", visibility=VISIBILITY)
    ids = enqueue_blocking(sqs_endpoint, prefix, release, 2)
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            queues={"work": {"pollInterval": 1, "messageVisibilityTimeout": VISIBILITY}},
        )
    )
    process.wait_ready()
    wait_for(lambda: len(records.ids("start")) == 2)
    process.signal(signal.SIGTERM)
    process.wait_output("shutting down")
    process.signal(signal.SIGTERM)  # as an impatient operator, or a second kill, sends
    process.wait_output("still draining")
    assert process.process.poll() is None, "a second SIGTERM must not end the drain"
    release.touch()
    assert process.process.wait(30) == 0, process.output()
    assert sorted(records.ids("done")) == ids
    wait_for(lambda: queues.counts("work") == (0, 0))


def test_a_second_ctrl_c_returns_every_held_message_then_exits(
    sqs_endpoint, prefix, queues, records, release, spawn_pipeline
):
    queues.create("work", visibility=VISIBILITY)
    enqueue_blocking(sqs_endpoint, prefix, release, 3)
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            queues={"work": {"pollInterval": 1, "messageVisibilityTimeout": VISIBILITY}},
        )
    )
    process.wait_ready()
    wait_for(lambda: len(records.ids("start")) == 2)
    process.signal(signal.SIGINT)
    process.wait_output("shutting down")
    process.signal(signal.SIGINT)
    # The tasks are never released: only the forced stop can end the process.
    assert process.process.wait(30) == 130, process.output()
    output = process.output()
    assert records.ids("done") == []
    assert "forced stop: 2 held messages returned at once (visibility 0)" in output
    assert "Traceback" not in output
    # Nothing waits out the 60 s window: the two running tasks' messages are visible again.
    assert queues.counts("work") == (3, 0)
