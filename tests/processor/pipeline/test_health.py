"""/healthz covers the whole pipeline: a dead or stuck acker (nothing would be deleted any
more) or heartbeat (nothing renewed) fails it, so Kubernetes restarts the pod."""

from __future__ import annotations

import json

import pipelineapp
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings
from pipelinesupport import pipeline_config
from sqsproxy import Hold


def problems(process) -> list[str]:
    status, body = process.get("/healthz")
    return json.loads(body)["problems"] if status == 503 else []


def test_an_acker_stuck_in_a_delete_fails_healthz(
    sqs_endpoint, sqs_proxy, prefix, queues, records, spawn_pipeline
):
    queues.create("work")
    # Every delete hangs (until the client gives up): the acker is stuck in its calls.
    sqs_proxy.hold(Hold(match=lambda call: call.action == "DeleteMessageBatch", times=1000))
    process = spawn_pipeline(
        pipeline_config(
            endpoint=sqs_proxy.endpoint,
            prefix=prefix,
            stallTimeout=3,
            queues={"work": {"pollInterval": 1}},
        )
    )
    process.wait_ready()
    assert problems(process) == []
    Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix)).enqueue(
        pipelineapp.provider["ok:job"], {"id": "m"}
    )
    wait_for(lambda: records.ids("done") == ["m"])
    found = wait_for(
        lambda: [p for p in problems(process) if p.startswith("acker made no progress")],
        timeout=30,
    )
    assert "finished messages are not being deleted" in found[0]


def test_a_dead_acker_or_heartbeat_fails_healthz(sqs_endpoint, prefix, queues, start_processor):
    queues.create("work")
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    wait_for(lambda: processor.readiness_problems() == [])
    assert processor.liveness_problems() == []
    processor._acker.stop(timeout=5)  # its thread ends, as an unexpected error would end it
    processor._heartbeat.stop()
    assert processor.liveness_problems() == [
        "acker died: finished messages are no longer deleted",
        "visibility heartbeat died",
    ]


def test_a_stalled_heartbeat_fails_healthz(sqs_endpoint, prefix, queues, start_processor):
    queues.create("work")
    queues.create("other")
    processor = start_processor(processor_config(endpoint=sqs_endpoint, prefix=prefix))
    wait_for(lambda: processor.readiness_problems() == [])
    processor._heartbeat.last_progress -= 100  # as if a beat had hung for 100 s
    [problem] = processor.liveness_problems()
    assert problem.startswith("visibility heartbeat made no progress for")
