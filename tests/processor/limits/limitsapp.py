"""Tasks with limits, sharing one queue with an unlimited one; counts what runs at once."""

from __future__ import annotations

import threading
import time

import pydantic
from kube_taskqueue import Provider

provider = Provider()
_lock = threading.Lock()
running: dict[str, int] = {"slow:job": 0}
peak: dict[str, int] = {"slow:job": 0}
done: list[str] = []


class Item(pydantic.BaseModel):
    id: str


@provider.task("slow:job", queue="work", max_concurrency=1)
def slow(payload: Item) -> None:
    with _lock:
        running["slow:job"] += 1
        peak["slow:job"] = max(peak["slow:job"], running["slow:job"])
    time.sleep(0.5)
    with _lock:
        running["slow:job"] -= 1
        done.append(payload.id)


@provider.task("fast:job", queue="work")
def fast(payload: Item) -> None:
    with _lock:
        done.append(payload.id)


@provider.task("metered:job", queue="work", rate_limit=2)
def metered(payload: Item) -> None:
    with _lock:
        done.append(payload.id)
