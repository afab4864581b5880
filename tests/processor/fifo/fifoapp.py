"""A FIFO task grouped by account, recording runs per group (and failing on request)."""

from __future__ import annotations

import threading
import time

import pydantic
from kube_taskqueue import Provider, current_message

provider = Provider()
_lock = threading.Lock()
events: list[tuple[str, str, int]] = []  # (event, id, receive count)
running: dict[str, int] = {}
peak: dict[str, int] = {}
fail_once: set[str] = set()


class Entry(pydantic.BaseModel):
    account: str
    id: str
    pause: float = 0.05


@provider.task("ledger:post", queue="ledger.fifo", group_by="account", deduplicate_by="id")
def post(payload: Entry) -> None:
    message = current_message()
    count = message.receive_count if message else 0
    with _lock:
        running[payload.account] = running.get(payload.account, 0) + 1
        peak[payload.account] = max(peak.get(payload.account, 0), running[payload.account])
        events.append(("start", payload.id, count))
    try:
        time.sleep(payload.pause)
        if payload.id in fail_once and count == 1:
            raise RuntimeError(f"{payload.id} fails on its first try")
    finally:
        with _lock:
            running[payload.account] -= 1
    with _lock:
        events.append(("done", payload.id, count))
