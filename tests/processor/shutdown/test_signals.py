"""SIGTERM and SIGKILL of a real `kube-taskqueue run` process."""

from __future__ import annotations

import signal
import time

import sampleapp
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings


def test_sigterm_lets_running_tasks_finish_and_returns_the_rest_at_once(
    sqs_endpoint, prefix, queues, records, spawn
):
    queues.create("work")
    queues.create("other")
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, workers=2)
    Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix)).enqueue_many(
        sampleapp.provider["record:job"], [{"id": f"long{i}", "sleep": 3} for i in range(4)]
    )
    process = spawn(config)
    process.wait_ready()
    wait_for(lambda: len(records.ids("start")) == 2)
    time.sleep(0.5)
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(30) == 0, process.output()
    # The two running tasks finished; the two never started are visible again right away.
    assert sorted(records.ids("done")) == sorted(records.ids("start"))
    assert len(records.ids("done")) == 2
    assert queues.counts("work") == (2, 0)
    assert "processor stopped" in process.output()


def test_sigkill_mid_task_loses_nothing(sqs_endpoint, prefix, queues, records, spawn):
    queues.create("work")
    queues.create("other")
    config = processor_config(
        endpoint=sqs_endpoint,
        prefix=prefix,
        queues={"work": {"pollInterval": 1, "messageVisibilityTimeout": 2}},
    )
    Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix)).enqueue(
        sampleapp.provider["record:job"], {"id": "victim", "sleep": 2}
    )
    first = spawn(config)
    wait_for(lambda: records.ids("start") == ["victim"])
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert records.ids("done") == []
    second = spawn(config)
    second.wait_ready()
    wait_for(lambda: records.ids("done") == ["victim"], timeout=30)
    pids = [pid for event, _, pid, _ in records.events() if event == "start"]
    assert pids == [first.process.pid, second.process.pid]
    wait_for(lambda: queues.counts("work") == (0, 0))


def test_messages_received_while_stopping_are_returned_at_once(
    sqs_endpoint, prefix, queues, records, spawn
):
    queues.create("work")
    queues.create("other")
    # A 20 s long poll is under way when SIGTERM comes; what it returns must not stay hidden
    # for the 60 s visibility window.
    config = processor_config(
        endpoint=sqs_endpoint,
        prefix=prefix,
        workers=4,
        queues={"work": {"pollInterval": 20, "messageVisibilityTimeout": 60}},
    )
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    task = sampleapp.provider["record:job"]
    process = spawn(config)
    process.wait_ready()
    producer.enqueue(task, {"id": "running", "sleep": 4})
    wait_for(lambda: records.ids("start") == ["running"])
    time.sleep(0.5)  # the poller is back in its long poll
    process.process.send_signal(signal.SIGTERM)
    producer.enqueue_many(task, [{"id": "late1"}, {"id": "late2"}])
    assert process.process.wait(30) == 0, process.output()
    assert records.ids("done") == ["running"]
    assert queues.counts("work") == (2, 0)
