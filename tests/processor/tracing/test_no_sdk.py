"""OpenTelemetry's API without an SDK provider (issue #21): no span is started per message,
the trace context a message arrives with still reaches the task and the messages it sends, and
an SDK provider set after the processor started gets spans from then on. Against moto's
server and a processor in this test process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from harness import processor_config, wait_for
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer, ProxyTracerProvider
from opentelemetry.util._once import Once

sys.path.insert(0, str(Path(__file__).parent))

import relayapp  # importable once its directory is on the path

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
TRACESTATE = "vendor=opaque"


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API as a process starts with it: no provider set (test_tracing.py sets one for
    this process; it is back after the test), so the global one is the default proxy."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


@pytest.fixture
def no_op_spans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the spans the API's no-op tracer starts (what every ProxyTracer hands a
    span to while no provider is set)."""
    names: list[str] = []
    start_span = NoOpTracer.start_span

    def counting(self: NoOpTracer, name: str, *args: Any, **kwargs: Any) -> Any:
        names.append(name)
        return start_span(self, name, *args, **kwargs)

    monkeypatch.setattr(NoOpTracer, "start_span", counting)
    return names


@pytest.fixture
def relay(monkeypatch, sqs_endpoint, prefix, queues, start_processor, no_provider) -> Any:
    monkeypatch.setenv("RELAY_ENDPOINT", sqs_endpoint)
    monkeypatch.setenv("RELAY_PREFIX", prefix)
    queues.create("work", max_receive_count=1)
    queues.create("out")
    relayapp.seen.clear()
    config = processor_config(
        endpoint=sqs_endpoint,
        prefix=prefix,
        app="relayapp:provider",
        tasks=["relay:job"],  # `out` is not polled: the test reads what the task sent there
        queues={"work": {"pollInterval": 1, "messageVisibilityTimeout": 10}},
    )
    return start_processor(config)


def _send(queues: Any, item: str, *, traceparent: bool) -> None:
    attributes = {"JobName": {"DataType": "String", "StringValue": "relay:job"}}
    if traceparent:
        attributes["traceparent"] = {"DataType": "String", "StringValue": TRACEPARENT}
        attributes["tracestate"] = {"DataType": "String", "StringValue": TRACESTATE}
    queues.sqs.send_message(
        QueueUrl=queues.url("work"),
        MessageBody=f'{{"id": "{item}"}}',
        MessageAttributes=attributes,
    )


def _relayed(queues: Any) -> dict[str, str]:
    """The attributes of the next message the task sent to `out`."""

    def receive() -> list[dict[str, Any]]:
        response = queues.sqs.receive_message(
            QueueUrl=queues.url("out"), MessageAttributeNames=["All"], WaitTimeSeconds=1
        )
        return list(response.get("Messages", []))

    [message] = wait_for(receive)
    queues.sqs.delete_message(QueueUrl=queues.url("out"), ReceiptHandle=message["ReceiptHandle"])
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


def test_without_a_provider_no_span_is_started_and_the_context_is_passed_on(
    relay, queues, no_op_spans
):
    _send(queues, "a", traceparent=True)
    relayed = _relayed(queues)
    # The task ran in the sender's context, and its send carried that context on unchanged.
    [context] = relayapp.seen
    assert (format(context.trace_id, "032x"), format(context.span_id, "016x")) == (
        TRACE_ID,
        SPAN_ID,
    )
    assert relayed["traceparent"] == TRACEPARENT
    assert relayed["tracestate"] == TRACESTATE
    assert relayed["JobName"] == "sink:job"
    # A message without a context: the task runs with none and sends none.
    _send(queues, "b", traceparent=False)
    relayed = _relayed(queues)
    assert not relayapp.seen[1].is_valid
    assert "traceparent" not in relayed
    assert no_op_spans == []  # neither the run nor the send started a (no-op) span


def test_a_provider_set_after_the_processor_started_gets_spans(relay, queues, no_op_spans):
    _send(queues, "before", traceparent=True)
    assert _relayed(queues)["traceparent"] == TRACEPARENT
    assert no_op_spans == []
    # The app sets its SDK provider late (say, when its tasks module is imported).
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    _send(queues, "after", traceparent=True)
    relayed = _relayed(queues)
    wait_for(lambda: "process work" in {s.name for s in exporter.get_finished_spans()})
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run, send = spans["process work"], spans["send out"]
    assert format(run.context.trace_id, "032x") == TRACE_ID
    assert format(run.parent.span_id, "016x") == SPAN_ID
    assert send.parent.span_id == run.context.span_id
    assert relayed["traceparent"] == f"00-{TRACE_ID}-{format(send.context.span_id, '016x')}-01"
    assert no_op_spans == []
