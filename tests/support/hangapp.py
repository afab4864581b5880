"""A task app whose task can hang past its timeout, for the health endpoint tests."""

from __future__ import annotations

import asyncio
import threading

from kube_taskqueue import Provider
from pydantic import BaseModel

provider = Provider()
release = threading.Event()


class HangPayload(BaseModel):
    seconds: float


@provider.task("hang:job", queue="hang", timeout_seconds=0.5)
def hang(payload: HangPayload) -> None:
    release.wait(payload.seconds)


@provider.task("slow_async:job", queue="hang", timeout_seconds=0.5)
async def slow_async(payload: HangPayload) -> None:
    await asyncio.sleep(payload.seconds)
