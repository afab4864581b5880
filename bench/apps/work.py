"""The benchmark task body, shared by every system: optionally sleep (to model I/O), and
record the enqueue→start latency when asked to."""

from __future__ import annotations

import os
import time


def work(sleep_ms: float, sent: float) -> None:
    started = time.time()
    path = os.environ.get("BENCH_LATENCY_FILE")
    if path and sent:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{started - sent:.6f}\n")
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
