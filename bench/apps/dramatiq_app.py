"""The benchmark task for Dramatiq with its SQS broker (dramatiq-sqs)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq_sqs import SQSBroker

from bench.apps.work import work

QUEUE = os.environ.get("BENCH_QUEUE", "bench")
broker = SQSBroker(
    namespace=None,
    endpoint_url=os.environ.get("BENCH_ENDPOINT", "http://127.0.0.1:9324"),
    region_name="us-east-1",
    aws_access_key_id="x",
    aws_secret_access_key="x",
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def bench(sleep_ms: float = 0, sent: float = 0) -> None:
    work(sleep_ms, sent)
