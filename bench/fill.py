"""Enqueue benchmark messages in one system's own format: `python -m bench.fill SYSTEM N
SLEEP_MS [RATE]` with the queue in BENCH_* variables. RATE (msg/s) paces the sends and
stamps each message with its send time (for latency); without it, send as fast as possible."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def _paced(send, count: int, rate: float) -> None:
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(time.time())


def main(system: str, count: int, sleep_ms: float, rate: float | None) -> None:
    if system in ("taskqueue", "handwritten"):
        from taskqueue import Producer, SqsSettings

        from bench.apps.tq_app import provider

        name = os.environ["BENCH_QUEUE"]
        producer = Producer.from_settings(
            SqsSettings(endpoint=os.environ["BENCH_ENDPOINT"], queuePrefix=name[: -len("bench")])
        )
        task = provider["bench:job"]
        if rate:
            _paced(
                lambda sent: producer.enqueue(task, {"sleep_ms": sleep_ms, "sent": sent}),
                count,
                rate,
            )
            return
        chunks = [range(i, min(i + 1000, count)) for i in range(0, count, 1000)]
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda c: producer.enqueue_many(task, [{"sleep_ms": sleep_ms}] * len(c)), chunks
                )
            )
        return
    if system == "celery":
        from bench.apps.celery_app import bench

        def send(sent: float = 0) -> None:
            bench.apply_async(
                kwargs={"sleep_ms": sleep_ms, "sent": sent}, queue=os.environ["BENCH_QUEUE"]
            )
    elif system == "dramatiq":
        from bench.apps.dramatiq_app import bench

        def send(sent: float = 0) -> None:
            bench.send(sleep_ms=sleep_ms, sent=sent)
    else:
        raise SystemExit(f"unknown system {system}")
    if rate:
        _paced(send, count, rate)
        return
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: send(), range(count)))


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]),
        float(sys.argv[3]),
        float(sys.argv[4]) if len(sys.argv) > 4 else None,
    )
