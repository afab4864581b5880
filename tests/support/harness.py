"""Test helpers shared by the suites: queues, configs, waiting, records, subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SUPPORT = Path(__file__).parent
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Queues:
    """Creates queues (with dead-letter queues) under one prefix, and reads them back."""

    def __init__(self, sqs: Any, prefix: str) -> None:
        self.sqs = sqs
        self.prefix = prefix

    def create(
        self, name: str, *, max_receive_count: int | None = None, visibility: int = 30
    ) -> str:
        attributes = {"VisibilityTimeout": str(visibility)}
        if max_receive_count is not None:
            dlq = self.sqs.create_queue(QueueName=f"{self.prefix}{name}-dlq")["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)}
            )
        return str(
            self.sqs.create_queue(QueueName=self.prefix + name, Attributes=attributes)["QueueUrl"]
        )

    def names(self) -> list[str]:
        """Logical names of every queue under this prefix (dead-letter queues included)."""
        urls = self.sqs.list_queues(QueueNamePrefix=self.prefix).get("QueueUrls", [])
        return sorted(url.rsplit("/", 1)[1].removeprefix(self.prefix) for url in urls)

    def url(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=self.prefix + name)["QueueUrl"])

    def counts(self, name: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url(name),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def drain(self, name: str, *, wait: float = 1.0) -> list[dict[str, Any]]:
        """Receive (without deleting) every visible message, e.g. of a dead-letter queue."""
        messages: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            got = self.sqs.receive_message(
                QueueUrl=self.url(name),
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.update({m["MessageId"]: m for m in got})
            if not got:
                time.sleep(0.1)
        return list(messages.values())


def processor_config(
    *,
    endpoint: str,
    prefix: str,
    app: str = "sampleapp:provider",
    tasks: list[str] | None = None,
    queues: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "app": app,
        "processor": "test",
        "workers": 4,
        "shutdownTimeout": 20,
        "sqs": {"endpoint": endpoint, "region": REGION, "queuePrefix": prefix, "callTimeout": 3},
        "http": {"host": "127.0.0.1", "port": 0},
        "queues": queues
        or {
            "work": {"pollInterval": 1, "messageVisibilityTimeout": 10, "retryBackoffInitial": 0},
            "other": {"pollInterval": 1, "messageVisibilityTimeout": 10},
        },
        **extra,
    }
    if tasks is not None:
        config["tasks"] = tasks
    return config


def wait_for(condition: Callable[[], Any], *, timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll until `condition()` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


class Records:
    """Reads the sample app's durable execution log."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self) -> list[tuple[str, str, int, int]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            event, item, pid, count = line.split()
            rows.append((event, item, int(pid), int(count)))
        return rows

    def ids(self, event: str) -> list[str]:
        return [item for kind, item, _, _ in self.events() if kind == event]


class ProcessorProcess:
    """`kube-taskqueue run` in a subprocess, as Kubernetes runs it."""

    def __init__(
        self,
        config: dict[str, Any],
        directory: Path,
        env: dict[str, str],
        *,
        import_paths: tuple[Path, ...] = (),
        name: str = "processor",
    ) -> None:
        self.port = free_port()
        config = {**config, "http": {"host": "127.0.0.1", "port": self.port}}
        self.config_path = directory / f"{name}-{uuid.uuid4().hex[:6]}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.config_path.with_suffix(".log")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kube_taskqueue.cli", "run", "--config", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                **env,
                "PYTHONPATH": os.pathsep.join(str(p) for p in (*import_paths, SUPPORT)),
            },
            cwd=directory,
        )

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(
            lambda: self.get("/readyz")[0] == 200 or self.process.poll() is not None,
            timeout=timeout,
        )
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()
