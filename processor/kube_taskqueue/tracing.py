"""OpenTelemetry tracing, when the `otel` extra (opentelemetry-api) is installed; no-ops
otherwise.

A send injects the W3C trace context (`traceparent`, `tracestate`) into the message
attributes, inside a PRODUCER span; the processor extracts it and runs the task inside a
CONSUMER span whose parent is that context, so sends made by a task continue the same trace.
The `TraceId` attribute stays: it is what the logs carry. Span names and attributes follow
OpenTelemetry's messaging conventions (`send <queue>`, `process <queue>`,
`messaging.system=aws_sqs`). Exporting is the application's choice (an SDK and an exporter
configured as OpenTelemetry documents); without one the API records nothing.

While the global tracer provider is the API's default (no SDK provider set, the common case
when opentelemetry-api only came in as a dependency) or a no-op one, no span is started: a
no-op span would only pass the context on, so the sender's context is made current directly
and a send adds no span of its own; what the task sees and what its sends carry is the same.
The provider is looked up on every call (cheap), so one set later, even after the processor
started, gets spans from then on; the tracer is made once per provider.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import (
        NoOpTracer,
        NoOpTracerProvider,
        ProxyTracerProvider,
        SpanKind,
        Status,
        StatusCode,
    )
except ImportError:  # the otel extra is not installed
    trace = None  # type: ignore[assignment]

#: The attributes the W3C propagator writes (and nothing else is copied from a carrier).
PROPAGATION_ATTRIBUTES = ("traceparent", "tracestate")
_INSTRUMENTATION = "kube_taskqueue"
#: [(the global tracer provider last seen, its tracer or None when its spans would be no-ops)],
#: replaced whole, so a thread never sees one provider with another's tracer.
_cached: list[tuple[Any, Any]] = [(None, None)]


def enabled() -> bool:
    return trace is not None


def _tracer() -> Any:
    """The tracer to start spans with, or None when every span would be a no-op: the global
    provider is the API's default proxy (nothing set yet; once a provider is set,
    `get_tracer_provider` returns that one, so it is seen on the next call), a
    `NoOpTracerProvider`, or one that hands out no-op tracers (the SDK's when disabled)."""
    provider = trace.get_tracer_provider()
    seen, tracer = _cached[0]
    if provider is seen:
        return tracer
    tracer = None
    if not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider):
        tracer = provider.get_tracer(_INSTRUMENTATION)
        if isinstance(tracer, NoOpTracer):
            tracer = None
    _cached[0] = (provider, tracer)
    return tracer


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
    tracer = None if trace is None else _tracer()
    if tracer is None:  # no span: `inject` writes the current context, as a no-op span's
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
    carrier = {k: attributes[k] for k in PROPAGATION_ATTRIBUTES if k in attributes}
    tracer = _tracer()
    if tracer is None:
        # What a no-op span does, without one: the sender's span context (the invalid span
        # when the message carries none) becomes the current span for the task's run.
        span = trace.get_current_span(propagate.extract(carrier)) if carrier else trace.INVALID_SPAN
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)
        return
    parent = propagate.extract(carrier)
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
