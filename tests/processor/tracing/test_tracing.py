"""OpenTelemetry: one trace from an enqueue through two chained tasks, with the SDK's
in-memory exporter, against moto's server and a processor in this test process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from harness import processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

sys.path.insert(0, str(Path(__file__).parent))

import chainapp  # importable once its directory is on the path

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    # The global provider can be set once per process; this module owns it in the tests.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return _EXPORTER


@pytest.fixture
def chain(monkeypatch, sqs_endpoint, prefix, queues, start_processor, spans) -> Any:
    monkeypatch.setenv("CHAIN_ENDPOINT", sqs_endpoint)
    monkeypatch.setenv("CHAIN_PREFIX", prefix)
    queues.create("work", max_receive_count=1)
    spans.clear()
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, app="chainapp:provider")
    config["queues"] = {"work": {"pollInterval": 1, "messageVisibilityTimeout": 10}}
    return start_processor(config)


def _by_name(spans: InMemorySpanExporter, name: str) -> list[Any]:
    return [s for s in spans.get_finished_spans() if s.name == name]


def test_one_trace_from_the_send_through_two_chained_tasks(chain, spans, sqs_endpoint, prefix):
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    with trace.get_tracer("test").start_as_current_span("request") as request:
        producer.enqueue(chainapp.provider["first:job"], {"id": "a"})
    wait_for(lambda: len(_by_name(spans, "process work")) == 2)
    sends = sorted(_by_name(spans, "send work"), key=lambda s: s.start_time)
    runs = sorted(_by_name(spans, "process work"), key=lambda s: s.start_time)
    assert len(sends) == 2
    trace_ids = {s.context.trace_id for s in [*sends, *runs]}
    assert trace_ids == {request.get_span_context().trace_id}  # one trace end to end
    # request → send → process first → send (inside the task) → process second
    assert sends[0].parent.span_id == request.get_span_context().span_id
    assert runs[0].parent.span_id == sends[0].context.span_id
    assert sends[1].parent.span_id == runs[0].context.span_id
    assert runs[1].parent.span_id == sends[1].context.span_id
    assert [s.kind for s in sends] == [SpanKind.PRODUCER] * 2
    assert [s.kind for s in runs] == [SpanKind.CONSUMER] * 2
    assert [r.attributes["taskqueue.task"] for r in runs] == ["first:job", "second:job"]
    assert runs[0].attributes["messaging.system"] == "aws_sqs"
    assert runs[0].attributes["messaging.destination.name"] == "work"


def test_a_failing_task_marks_its_span(chain, spans, sqs_endpoint, prefix):
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    producer.enqueue(chainapp.provider["second:job"], {"id": "fail-1"})
    wait_for(lambda: _by_name(spans, "process work"))
    [run] = _by_name(spans, "process work")
    assert run.status.status_code == StatusCode.ERROR
    assert "second step failed" in (run.status.description or "")
    assert [e.name for e in run.events] == ["exception"]


def test_a_message_without_trace_context_starts_its_own_trace(chain, spans, queues):
    queues.sqs.send_message(
        QueueUrl=queues.url("work"),
        MessageBody='{"id": "raw"}',
        MessageAttributes={"JobName": {"DataType": "String", "StringValue": "second:job"}},
    )
    wait_for(lambda: _by_name(spans, "process work"))
    [run] = _by_name(spans, "process work")
    assert run.parent is None
