"""The systems compared: how each one enqueues the benchmark task and runs its consumer."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SYSTEMS = ("taskqueue", "handwritten", "celery", "dramatiq")
LABELS = {
    "taskqueue": "TaskQueue",
    "handwritten": "hand-written boto3 loop (limit)",
    "celery": "Celery (kombu SQS)",
    "dramatiq": "Dramatiq (dramatiq-sqs)",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Queue:
    name: str
    url: str


def environment(*, endpoint: str, queue: Queue, latency_file: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BENCH_ENDPOINT": endpoint,
        "BENCH_QUEUE": queue.name,
        # The queue's URL, but through `endpoint` (the counting proxy for consumers).
        "BENCH_QUEUE_URL": endpoint + "/" + queue.url.split("/", 3)[3] if queue.url else "",
        "BENCH_CELERY_BROKER": "sqs://x:x@" + endpoint.split("//", 1)[1],
    }
    env.pop("BENCH_LATENCY_FILE", None)
    if latency_file:
        env["BENCH_LATENCY_FILE"] = latency_file
    return env


def consumer_command(system: str, *, endpoint: str, queue: Queue, workers: int) -> list[str]:
    if system == "taskqueue":
        config = {
            "app": "bench.apps.tq_app:provider",
            "processor": "bench",
            "workers": workers,
            "sqs": {
                "endpoint": endpoint,
                "region": "us-east-1",
                "queuePrefix": queue.name[: -len("bench")],
            },
            "http": {"host": "127.0.0.1", "port": 0},
            "queues": {"bench": {"pollInterval": 20, "messageVisibilityTimeout": 60}},
        }
        path = Path(tempfile.mkdtemp()) / "processor.yaml"
        path.write_text(yaml.safe_dump(config))
        return [PYTHON, "-m", "kube_taskqueue.cli", "run", "--config", str(path)]
    if system == "handwritten":
        url = environment(endpoint=endpoint, queue=queue)["BENCH_QUEUE_URL"]
        return [PYTHON, "-m", "bench.apps.handwritten", endpoint, url, str(workers)]
    if system == "celery":
        return [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "bench.apps.celery_app",
            "worker",
            "--pool",
            "threads",
            "-c",
            str(workers),
            "-Q",
            queue.name,
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
    if system == "dramatiq":
        return [
            PYTHON,
            "-m",
            "dramatiq",
            "bench.apps.dramatiq_app",
            "--processes",
            "1",
            "--threads",
            str(workers),
        ]
    raise ValueError(system)
