"""A two-step app for the tracing test: `first:job` enqueues `second:job`."""

from __future__ import annotations

import os

import pydantic
from kube_taskqueue import Producer, Provider, SqsSettings

provider = Provider()


class Step(pydantic.BaseModel):
    id: str


def _producer() -> Producer:
    return Producer.from_settings(
        SqsSettings(endpoint=os.environ["CHAIN_ENDPOINT"], queuePrefix=os.environ["CHAIN_PREFIX"])
    )


@provider.task("first:job", queue="work")
def first(payload: Step) -> None:
    _producer().enqueue(provider["second:job"], {"id": payload.id + "-next"})


@provider.task("second:job", queue="work")
def second(payload: Step) -> None:
    if payload.id.startswith("fail"):
        raise RuntimeError("second step failed")
