"""Enqueue benchmark messages in one system's own format: `python -m bench.fill SYSTEM N
SLEEP_MS [RATE]` with the queue in BENCH_* variables. RATE (msg/s) paces the sends and
stamps each message with its send time (for latency); without it, send as fast as possible."""

from __future__ import annotations

import base64
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _paced(send, count: int, rate: float) -> None:
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(time.time())


def _decoded(body: str) -> tuple[str, bool]:
    """The message text, and whether the library base64-encoded it."""
    try:
        text = base64.b64decode(body, validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return body, False
    return (text, True) if text.lstrip().startswith("{") else (body, False)


def _copies(send_one: Callable[[], None], count: int) -> None:
    """Send one message through the library, read it back as SQS holds it, and send the
    other `count - 1` as copies with fresh ids, ten per SendMessageBatch: each library's own
    format, without one SendMessage per message (which made filling take longer than
    draining)."""
    send_one()
    sqs: Any = boto3.client("sqs", endpoint_url=os.environ["BENCH_ENDPOINT"])
    url = sqs.get_queue_url(QueueName=os.environ["BENCH_QUEUE"])["QueueUrl"]
    received: list[dict[str, Any]] = []
    while not received:
        received = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
    [template] = received
    sqs.change_message_visibility(  # it is one of the `count`: back to the queue
        QueueUrl=url, ReceiptHandle=template["ReceiptHandle"], VisibilityTimeout=0
    )
    text, encoded = _decoded(template["Body"])
    ids = set(_UUID.findall(text))
    attributes = template.get("MessageAttributes")

    def entry(index: int) -> dict[str, Any]:
        body = text
        for old in ids:
            body = body.replace(old, str(uuid.uuid4()))
        item: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": base64.b64encode(body.encode()).decode() if encoded else body,
        }
        if attributes:
            item["MessageAttributes"] = attributes
        return item

    def send(start: int) -> None:
        entries = [entry(i) for i in range(start, min(start + 10, count - 1))]
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"filling the queue failed: {failed}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(0, count - 1, 10)))


def main(system: str, count: int, sleep_ms: float, rate: float | None) -> None:
    if system in ("taskqueue", "handwritten"):
        from kube_taskqueue import Producer, SqsSettings

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
    _copies(send, count)


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]),
        float(sys.argv[3]),
        float(sys.argv[4]) if len(sys.argv) > 4 else None,
    )
