"""The main SQS client's connection pool holds every call the processor can have open at once
(each receive loop's one call, plus the acker's), so urllib3 never opens and throws away
connections beyond it ("Connection pool is full")."""

from __future__ import annotations

import sampleapp
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings


def test_the_pool_is_sized_from_the_receive_loops_and_the_acker():
    from kube_taskqueue.runtime import clients

    # One loop per batch of workers and queue; open receives hold a worker each.
    assert clients.receive_loops(workers=24, max_batch_size=1) == 24
    assert clients.receive_loops(workers=16, max_batch_size=10) == 2
    assert clients.receive_loops(workers=4, max_batch_size=10) == 1
    assert clients.connection_pool_size(loops=[24, 24], workers=24) == 24 + 2 + 1
    assert clients.connection_pool_size(loops=[2], workers=16) == 2 + 1
    assert clients.connection_pool_size(loops=[1, 1, 1], workers=4) == 3 + 1


def test_renewal_calls_are_bounded_well_below_half_the_shortest_window():
    from kube_taskqueue.runtime import clients

    for visibility in (2, 4, 10, 30, 300, 43_200):
        bound = clients.renewal_timeout_seconds(shortest_visibility=visibility, call_timeout=10)
        assert bound <= 10
        assert bound <= max(clients.MIN_RENEWAL_TIMEOUT_SECONDS, visibility / 10)
        assert bound < visibility / 2 or visibility <= 2
    assert clients.renewal_timeout_seconds(shortest_visibility=30, call_timeout=10) == 3


def test_many_receive_loops_on_two_busy_queues_never_overflow_the_pool(
    sqs_endpoint, prefix, queues, records, spawn
):
    queues.create("work")
    queues.create("other")
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    count = 120
    producer.enqueue_many(
        sampleapp.provider["record:job"], [{"id": f"w{i}", "sleep": 0.05} for i in range(count)]
    )
    producer.enqueue_many(sampleapp.provider["other:job"], [{"n": i} for i in range(count)])
    # Batches of one: 24 receive loops per queue, all busy, far more than `queues + 8`.
    settings = {"pollInterval": 1, "maxBatchSize": 1, "retryBackoffInitial": 0}
    process = spawn(
        processor_config(
            endpoint=sqs_endpoint,
            prefix=prefix,
            workers=24,
            queues={"work": settings, "other": settings},
        )
    )
    process.wait_ready()
    wait_for(lambda: len(set(records.ids("done"))) >= 2 * count, timeout=120)
    wait_for(lambda: queues.counts("work") == (0, 0) and queues.counts("other") == (0, 0))
    assert "Connection pool is full" not in process.output()
