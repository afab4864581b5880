"""The bundled example app that `kube-taskqueue dev` runs: three tasks on two queues.

It shows the two ways to write a task (a class, and a decorated function), an async task,
a task that fails now and then (to watch retries and the dead-letter queue), and a custom
error handler.
"""

from __future__ import annotations

import asyncio
import logging
import random

from pydantic import BaseModel, Field

from kube_taskqueue import Message, Provider, SendRequest, Task

log = logging.getLogger(__name__)


class ExamplePayload(BaseModel):
    param: str


class ExampleTask(Task[ExamplePayload]):
    """The seed's `example:job`, on its own queue."""

    name = "example:job"
    queue = "example_queue"
    payload_model = ExamplePayload

    def process(self, payload: ExamplePayload) -> None:
        log.info("example:job says %s", payload.param)


class CleanupPayload(BaseModel):
    older_than_days: int = Field(default=30, ge=1)
    failure_rate: float = Field(default=0.0, ge=0, le=1)


provider = Provider([ExampleTask()])


@provider.task("cleanup:job", queue="shared", timeout_seconds=60)
async def cleanup(payload: CleanupPayload) -> None:
    await asyncio.sleep(0.2)
    if random.random() < payload.failure_rate:
        raise RuntimeError("simulated failure, the message will be retried")
    log.info("cleaned up rows older than %d days", payload.older_than_days)


class ReportPayload(BaseModel):
    account: str


def _drop_unknown_accounts(error: Exception, message: Message) -> bool:
    # A report for an account that does not exist will never succeed: delete, don't retry.
    return isinstance(error, LookupError)


def _delay_reports(payload: ReportPayload, request: SendRequest) -> SendRequest:
    request.delay_seconds = 1
    return request


@provider.task(
    "report:job",
    queue="shared",
    handle_error=_drop_unknown_accounts,
    build_message=_delay_reports,
)
def report(payload: ReportPayload) -> None:
    if payload.account == "unknown":
        raise LookupError(f"account {payload.account!r} does not exist")
    log.info("report built for %s", payload.account)
