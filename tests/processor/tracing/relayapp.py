"""An app for the tests without an SDK provider: `relay:job` records the span context it runs
in and sends `sink:job` to a queue the test's processor does not poll, where the test reads
the message's attributes."""

from __future__ import annotations

import os

import pydantic
from kube_taskqueue import Producer, Provider, SqsSettings
from opentelemetry import trace

provider = Provider()
#: The span context each `relay:job` run saw as current.
seen: list[trace.SpanContext] = []


class Item(pydantic.BaseModel):
    id: str


@provider.task("relay:job", queue="work")
def relay(payload: Item) -> None:
    seen.append(trace.get_current_span().get_span_context())
    Producer.from_settings(
        SqsSettings(endpoint=os.environ["RELAY_ENDPOINT"], queuePrefix=os.environ["RELAY_PREFIX"])
    ).enqueue(provider["sink:job"], {"id": payload.id})


@provider.task("sink:job", queue="out")
def sink(payload: Item) -> None:
    pass
