"""`kube-taskqueue dev`: the whole thing on one machine, against an embedded SQS (moto's server).

No AWS account, no cluster: it starts the server on a loopback port, creates the queues with
their dead-letter queues, sends a few demo messages, runs the processor and prints progress.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kube_taskqueue.app import Processor
from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import ProcessorConfig, load_config
from kube_taskqueue.producer import Producer
from kube_taskqueue.runner import run_processor
from kube_taskqueue.sqs import make_client

BUNDLED_CONFIG = Path(__file__).parent / "examples" / "dev.yaml"
DEAD_LETTER_SUFFIX = "-dlq"
MAX_RECEIVE_COUNT = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_sqs(*, port: int | None = None) -> Iterator[str]:
    """Run moto's server on loopback for the block; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise SystemExit(
            "kube-taskqueue dev needs the embedded SQS server: pip install 'kube-taskqueue[dev]'"
        ) from None
    chosen = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=chosen, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{chosen}"
    finally:
        server.stop()


def create_queues(config: ProcessorConfig, queues: tuple[str, ...]) -> dict[str, str]:
    """Create each queue and its dead-letter queue (maxReceiveCount 3); returns DLQ URLs."""
    client: Any = make_client(
        region=config.sqs.region, endpoint=config.sqs.endpoint, call_timeout_seconds=5
    )
    dead_letters = {}
    for queue in queues:
        name = config.physical_name(queue)
        dlq_url = client.create_queue(QueueName=name + DEAD_LETTER_SUFFIX)["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
        client.create_queue(
            QueueName=name,
            Attributes={
                "RedrivePolicy": json.dumps(redrive),
                "VisibilityTimeout": str(config.queue_settings(queue).message_visibility_timeout),
            },
        )
        dead_letters[queue] = dlq_url
    return dead_letters


def send_demo_messages(config: ProcessorConfig, count: int) -> None:
    """A mix of messages: plain ones, flaky ones that retry, and ones that fail for good."""
    provider, _ = resolve(config)
    producer = Producer.from_config(config)
    for index in range(count):
        if "example:job" in provider:
            producer.enqueue(provider["example:job"], {"param": f"hello {index}"})
        if "cleanup:job" in provider:
            producer.enqueue(provider["cleanup:job"], {"older_than_days": 7, "failure_rate": 0.3})
    if "report:job" in provider:
        producer.enqueue(provider["report:job"], {"account": "acme"})
        producer.enqueue(provider["report:job"], {"account": "unknown"})


class Progress:
    """Prints processed / failed / in flight / dead-lettered every `interval` seconds."""

    def __init__(
        self, *, config: ProcessorConfig, dead_letters: dict[str, str], interval: float
    ) -> None:
        self._client: Any = make_client(
            region=config.sqs.region, endpoint=config.sqs.endpoint, call_timeout_seconds=5
        )
        self._dead_letters = dead_letters
        self._interval = interval
        self._stop = threading.Event()

    def follow(self, processor: Processor) -> None:
        thread = threading.Thread(target=self._run, args=(processor,), daemon=True)
        thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, processor: Processor) -> None:
        while not self._stop.wait(self._interval):
            counts = processor.snapshot()
            print(
                f"processed {counts['processed']} · failed {counts['failed']} · "
                f"unroutable {counts['unroutable']} · in flight {counts['in_flight']} · "
                f"dead-lettered {self._dead_lettered()}",
                flush=True,
            )

    def _dead_lettered(self) -> int:
        total = 0
        for url in self._dead_letters.values():
            attributes = self._client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            total += int(attributes.get("ApproximateNumberOfMessages", 0))
        return total


def run_dev(
    *,
    config_path: str | None,
    demo_messages: int,
    duration: float | None,
    sqs_port: int | None,
    http_port: int | None,
) -> int:
    # moto accepts any credentials; set dummies so no real ones are looked up or used.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    base = load_config(config_path or BUNDLED_CONFIG)
    with embedded_sqs(port=sqs_port) as endpoint:
        data = base.model_dump(by_alias=True, exclude_none=True)
        data["sqs"]["endpoint"] = endpoint
        if http_port is not None:
            data["http"]["port"] = http_port
        config = ProcessorConfig.model_validate(data)
        provider, assignment = resolve(config)
        dead_letters = create_queues(config, assignment.queues)
        effective = Path(tempfile.gettempdir()) / f"taskqueue-dev-{os.getpid()}.yaml"
        effective.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        first = sorted(assignment.tasks)[0]
        print(
            f"embedded SQS at {endpoint}; queues: {', '.join(assignment.queues)} "
            f"(dead-letter queues after {MAX_RECEIVE_COUNT} receives)\n"
            f"send a task from another terminal:\n"
            f"  kube-taskqueue enqueue --config {effective} --name {first} "
            f"'{_example_payload(provider[first].payload_model)}'\n"
            "Ctrl-C stops (in-flight tasks finish first).",
            flush=True,
        )
        send_demo_messages(config, demo_messages)
        progress = Progress(config=config, dead_letters=dead_letters, interval=2.0)
        stop = threading.Event()
        if duration is not None:
            threading.Timer(duration, stop.set).start()
        try:
            code = run_processor(
                config, provider=provider, on_started=progress.follow, stop_event=stop
            )
        finally:
            progress.stop()
            effective.unlink(missing_ok=True)
        print("stopped", file=sys.stderr, flush=True)
        return code


def _example_payload(model: Any) -> str:
    example = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            example[name] = "value"
    return json.dumps(example)
