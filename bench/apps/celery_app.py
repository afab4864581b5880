"""The benchmark task for Celery on SQS (kombu's SQS transport), with Celery's defaults but
for the queue and concurrency under test."""

from __future__ import annotations

import os

from celery import Celery

from bench.apps.work import work

QUEUE = os.environ.get("BENCH_QUEUE", "bench")
app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "sqs://x:x@127.0.0.1:9324"))
app.conf.update(
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "predefined_queues": {
            QUEUE: {
                "url": os.environ.get("BENCH_QUEUE_URL", ""),
                "access_key_id": "x",
                "secret_access_key": "x",
            }
        },
    },
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)


@app.task(name="bench")
def bench(sleep_ms: float = 0, sent: float = 0) -> None:
    work(sleep_ms, sent)
