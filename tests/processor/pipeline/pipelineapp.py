"""The task app of the pipeline tests: tasks that block on a file, raise what tasks should
not raise, or fail once a renewal is on the wire. Runs are written to the sample app's
durable log (RECORD_FILE: `start|done|fail <id> <pid> <receive count>`)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from kube_taskqueue import Provider, current_message
from pydantic import BaseModel
from sampleapp import record

provider = Provider()

#: Longest a task waits for a file the test creates; a bound, so nothing hangs for ever.
WAIT_LIMIT_SECONDS = 90


def wait_for_file(path: str) -> bool:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not Path(path).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class BlockPayload(BaseModel):
    id: str
    release: str
    """Path of a file: the task returns once it exists."""


@provider.task("block:job", queue="work")
def block(payload: BlockPayload) -> None:
    record("start", payload.id)
    wait_for_file(payload.release)
    record("done", payload.id)


class AbortPayload(BaseModel):
    id: str
    how: str


@provider.task("abort:job", queue="work")
def abort(payload: AbortPayload) -> None:
    record("start", payload.id)
    if payload.how == "exit":
        sys.exit(3)
    if payload.how == "interrupt":
        raise KeyboardInterrupt
    if payload.how == "generator_exit":
        raise GeneratorExit
    raise AssertionError(f"unknown way to abort: {payload.how}")


@provider.task("abort_async:job", queue="work")
async def abort_async(payload: AbortPayload) -> None:
    record("start", payload.id)
    await asyncio.sleep(0)
    if payload.how == "cancelled":
        raise asyncio.CancelledError
    if payload.how == "exit":
        raise SystemExit(4)
    if payload.how == "interrupt":
        raise KeyboardInterrupt
    raise AssertionError(f"unknown way to abort: {payload.how}")


class RacePayload(BaseModel):
    id: str
    marker: str
    """Created by the test's proxy while it holds a renewal of this message."""


@provider.task("race:job", queue="work")
def race(payload: RacePayload) -> None:
    record("start", payload.id)
    message = current_message()
    if message is not None and message.receive_count == 1:
        wait_for_file(payload.marker)
        record("fail", payload.id)
        raise RuntimeError("failing while a renewal of this message is on the wire")
    record("done", payload.id)


class IdPayload(BaseModel):
    id: str


@provider.task("ok:job", queue="work")
def ok(payload: IdPayload) -> None:
    record("start", payload.id)
    record("done", payload.id)


@provider.task("idle:job", queue="idle")
def idle(payload: IdPayload) -> None:
    record("start", payload.id)
    record("done", payload.id)
