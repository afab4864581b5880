"""Visibility renewals under trouble, through a proxy that holds renewal calls: one hung
renewal costs a short, bounded wait (never the message's window), and a renewal on the wire
when the task fails never lands after the retry's own visibility change."""

from __future__ import annotations

from collections import Counter

import pipelineapp
from harness import wait_for
from kube_taskqueue import Producer, SqsSettings
from pipelinesupport import pipeline_config
from sqsproxy import Call, Hold, SqsProxy

BATCH = "ChangeMessageVisibilityBatch"


def renewal(visibility: int):
    """A renewal: the heartbeat renews with the queue's own window; retries and give-backs
    set their backoff or 0."""

    def match(call: Call) -> bool:
        return call.action == BATCH and set(call.visibilities.values()) == {visibility}

    return match


def visibility_calls(proxy: SqsProxy, receipt: str) -> list[Call]:
    return [call for call in proxy.of(BATCH) if receipt in call.visibilities]


def test_a_hung_renewal_does_not_hand_a_long_task_to_a_second_worker(
    sqs_endpoint, sqs_proxy, prefix, queues, records, release, spawn_pipeline
):
    visibility = 10
    queues.create("work", visibility=visibility)
    hung = sqs_proxy.hold(Hold(match=renewal(visibility)))  # the first renewal never answers
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_proxy.endpoint,
            prefix=prefix,
            workers=2,  # a free worker to take the message, should it become visible
            queues={"work": {"pollInterval": 1, "messageVisibilityTimeout": visibility}},
        )
    )
    process.wait_ready()
    Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix)).enqueue(
        pipelineapp.provider["block:job"], {"id": "long", "release": str(release)}
    )
    wait_for(lambda: records.ids("start") == ["long"])

    def renewed_after_the_hang() -> int:
        return sum(1 for call in sqs_proxy.of(BATCH) if call.answered and not call.held)

    # Two renewals answered after the hung one: well past the first window's end, which the
    # hang would have let run out. Or the message went to the second worker.
    wait_for(lambda: renewed_after_the_hang() >= 2 or len(records.ids("start")) > 1, timeout=60)
    assert records.ids("start") == ["long"], "the message was handed to a second worker"
    [call] = hung.calls
    assert call.dropped  # the heartbeat gave up on it (bounded, no botocore retry) and went on
    release.touch()
    wait_for(lambda: records.ids("done") == ["long"])
    wait_for(lambda: queues.counts("work") == (0, 0))


def test_a_renewal_on_the_wire_when_its_task_fails_never_undoes_the_retry(
    sqs_endpoint, sqs_proxy, prefix, queues, records, tmp_path, spawn_pipeline
):
    visibility = 6
    queues.create("work", visibility=visibility, max_receive_count=5)
    marker = tmp_path / "renewal-held"

    def retried(call: Call) -> bool:
        # The retry (backoff 0) of the held renewal's message has been answered by SQS.
        return any(
            other.answered and other.visibilities.get(receipt) == 0
            for receipt in call.visibilities
            for other in visibility_calls(sqs_proxy, receipt)
        )

    held = sqs_proxy.hold(
        Hold(match=renewal(visibility), until=retried, on_hold=lambda _call: marker.touch())
    )
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_proxy.endpoint,
            prefix=prefix,
            queues={
                "work": {
                    "pollInterval": 1,
                    "messageVisibilityTimeout": visibility,
                    "retryBackoffInitial": 0,
                }
            },
        )
    )
    process.wait_ready()
    # The task fails once its first renewal is held on the way to SQS.
    Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix)).enqueue(
        pipelineapp.provider["race:job"], {"id": "r", "marker": str(marker)}
    )
    wait_for(lambda: records.ids("done") == ["r"], timeout=60)
    assert Counter(records.ids("fail")) == {"r": 1}
    [renewal_call] = held.calls
    [receipt] = renewal_call.visibilities
    calls = visibility_calls(sqs_proxy, receipt)
    [retry] = [call for call in calls if call.visibilities[receipt] == 0]
    assert retry.forwarded is not None
    # No renewal of the message reached SQS after its retry: the backoff stood.
    late = [
        call
        for call in calls
        if call.visibilities[receipt] == visibility
        and call.forwarded is not None
        and call.forwarded > retry.forwarded
    ]
    assert late == [], "a renewal reached SQS after the retry and reset its backoff"
