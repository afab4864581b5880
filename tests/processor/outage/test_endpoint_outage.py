"""The SQS endpoint going away and coming back: the processor backs off and carries on."""

from __future__ import annotations

import time

import sampleapp
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings
from proxy import OutageProxy


def test_processor_survives_an_endpoint_outage(
    moto_port, sqs_endpoint, prefix, queues, records, start_processor
):
    queues.create("work")
    queues.create("other")
    proxy = OutageProxy(moto_port)
    try:
        processor = start_processor(processor_config(endpoint=proxy.endpoint, prefix=prefix))
        producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
        task = sampleapp.provider["record:job"]
        producer.enqueue(task, {"id": "before"})
        wait_for(lambda: records.ids("done") == ["before"])
        proxy.down()
        producer.enqueue_many(task, [{"id": f"during{i}"} for i in range(3)])
        time.sleep(4)
        assert records.ids("done") == ["before"]
        errors = processor.metrics.sqs_errors.labels(call="receive_message")._value.get()
        assert errors >= 1
        assert all(poller.is_alive() for poller in processor.pollers)
        proxy.up()
        wait_for(lambda: len(records.ids("done")) == 4, timeout=30)
        wait_for(lambda: queues.counts("work") == (0, 0), timeout=15)
        assert processor.liveness_problems() == []
    finally:
        proxy.close()
