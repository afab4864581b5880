"""The benchmark task for TaskQueue."""

from __future__ import annotations

from kube_taskqueue import Provider
from pydantic import BaseModel

from bench.apps.work import work


class BenchPayload(BaseModel):
    sleep_ms: float = 0
    sent: float = 0


provider = Provider()


@provider.task("bench:job", queue="bench")
def bench(payload: BenchPayload) -> None:
    work(payload.sleep_ms, payload.sent)
