"""Sync tasks with timeouts, for the timeout tests."""

from __future__ import annotations

import threading
import time

import pydantic
from kube_taskqueue import Provider, cancelled, current_message

provider = Provider()
stopped = threading.Event()
seen: list[str] = []
_lock = threading.Lock()


class Item(pydantic.BaseModel):
    id: str


def _record(event: str) -> None:
    with _lock:
        seen.append(event)


@provider.task("stuck:job", queue="work", timeout_seconds=0.5)
def stuck(payload: Item) -> None:
    # Cooperative: it checks whether it was given up on, and stops.
    while not cancelled():
        time.sleep(0.02)
    stopped.set()


@provider.task("quick:job", queue="work", timeout_seconds=5)
def quick(payload: Item) -> None:
    message = current_message()  # the context reaches the task's thread
    _record(f"{payload.id}:{message.receive_count if message else 'none'}")


@provider.task("plain:job", queue="work")
def plain(payload: Item) -> None:
    _record(payload.id)
