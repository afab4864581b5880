"""OpenTelemetry tracing, when the `otel` extra (opentelemetry-api) is installed; no-ops
otherwise.

A send injects the W3C trace context (`traceparent`, `tracestate`) into the message
attributes, inside a PRODUCER span; the processor extracts it and runs the task inside a
CONSUMER span whose parent is that context, so sends made by a task continue the same trace.
The `TraceId` attribute stays: it is what the logs carry. Span names and attributes follow
OpenTelemetry's messaging conventions (`send <queue>`, `process <queue>`,
`messaging.system=aws_sqs`). Exporting is the application's choice (an SDK and an exporter
configured as OpenTelemetry documents); without one the API records nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the otel extra is not installed
    trace = None  # type: ignore[assignment]

#: The attributes the W3C propagator writes (and nothing else is copied from a carrier).
PROPAGATION_ATTRIBUTES = ("traceparent", "tracestate")
_INSTRUMENTATION = "kube_taskqueue"


def enabled() -> bool:
    return trace is not None


def inject(attributes: MutableMapping[str, str]) -> None:
    """Add the current trace context to a message's attributes (nothing without a span)."""
    if trace is None:
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    attributes.update({k: v for k, v in carrier.items() if k in PROPAGATION_ATTRIBUTES and v})


@contextlib.contextmanager
def sending(queue: str, *, task: str, count: int = 1) -> Iterator[None]:
    """A PRODUCER span around a send (the context `inject` then writes is this span's)."""
    if trace is None:
        yield
        return
    attributes: dict[str, Any] = {
        "messaging.system": "aws_sqs",
        "messaging.operation.type": "send",
        "messaging.destination.name": queue,
        "taskqueue.task": task,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    tracer = trace.get_tracer(_INSTRUMENTATION)
    with tracer.start_as_current_span(
        f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield


@contextlib.contextmanager
def processing(
    *, queue: str, task: str, message_id: str, attributes: Mapping[str, str], receive_count: int
) -> Iterator[None]:
    """A CONSUMER span around a task's run, child of the sender's context; an exception
    escaping the block is recorded on it and marks it as an error."""
    if trace is None:
        yield
        return
    parent = propagate.extract(
        {k: attributes[k] for k in PROPAGATION_ATTRIBUTES if k in attributes}
    )
    tracer = trace.get_tracer(_INSTRUMENTATION)
    with tracer.start_as_current_span(
        f"process {queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        record_exception=False,
        set_status_on_exception=False,
        attributes={
            "messaging.system": "aws_sqs",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": message_id,
            "messaging.aws_sqs.receive_count": receive_count,
            "taskqueue.task": task,
        },
    ) as span:
        try:
            yield
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
