"""A task app for the tests: each run of `record:job` is written to a durable log.

The log (path in RECORD_FILE) gets one line per event, `start|done|fail <id> <pid> <count>`,
appended with O_APPEND, so it survives a SIGKILL of the processor mid-task.
"""

from __future__ import annotations

import asyncio
import os
import time

from kube_taskqueue import Message, Provider, current_message
from pydantic import BaseModel


class RecordPayload(BaseModel):
    id: str
    sleep: float = 0
    fail_times: int = 0
    """Fail while the receive count is at most this."""
    delete_on_failure: bool = False


def record(event: str, item: str) -> None:
    path = os.environ.get("RECORD_FILE")
    if not path:
        return
    message = current_message()
    count = message.receive_count if message else 0
    line = f"{event} {item} {os.getpid()} {count}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _delete_if_asked(error: Exception, message: Message) -> bool:
    return RecordPayload.model_validate_json(message.body).delete_on_failure


provider = Provider()


@provider.task("record:job", queue="work", handle_error=_delete_if_asked)
def record_job(payload: RecordPayload) -> None:
    record("start", payload.id)
    time.sleep(payload.sleep)
    message = current_message()
    if message is not None and message.receive_count <= payload.fail_times:
        record("fail", payload.id)
        raise RuntimeError(f"planned failure of {payload.id}")
    record("done", payload.id)


@provider.task("record_async:job", queue="work")
async def record_async_job(payload: RecordPayload) -> None:
    record("start", payload.id)
    await asyncio.sleep(payload.sleep)
    record("done", payload.id)


class OtherPayload(BaseModel):
    n: int


@provider.task("other:job", queue="other")
def other_job(payload: OtherPayload) -> None:
    record("done", f"other-{payload.n}")


#: The app one release earlier, before `record_async:job` was added (the rollout tests).
previous_release = Provider()


@previous_release.task("record:job", queue="work")
def previous_record_job(payload: RecordPayload) -> None:
    record("done", payload.id)


@previous_release.task("other:job", queue="other")
def previous_other_job(payload: OtherPayload) -> None:
    record("done", f"other-{payload.n}")
