"""One measurement: fill a fresh queue, start a system's consumer behind the counting proxy,
time the drain, sample its CPU and memory, count its SQS calls."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from typing import Any

import boto3
import psutil

from bench.countproxy import CountingProxy
from bench.systems import PYTHON, ROOT, Queue, consumer_command, environment


def client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def new_queue(sqs: Any, system: str) -> Queue:
    name = f"b{uuid.uuid4().hex[:8]}-bench"
    if system != "dramatiq":  # dramatiq-sqs creates its queue with its own attributes
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})
    return Queue(name=name, url="")


def queue_url(sqs: Any, queue: Queue) -> Queue:
    return Queue(name=queue.name, url=sqs.get_queue_url(QueueName=queue.name)["QueueUrl"])


def remaining(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def fill(
    system: str,
    *,
    endpoint: str,
    queue: Queue,
    count: int,
    sleep_ms: float,
    rate: float | None = None,
    latency_file: str | None = None,
) -> subprocess.Popen[bytes]:
    command = [PYTHON, "-m", "bench.fill", system, str(count), str(sleep_ms)]
    if rate:
        command.append(str(rate))
    return subprocess.Popen(
        command,
        env=environment(endpoint=endpoint, queue=queue, latency_file=latency_file),
        cwd=ROOT,
    )


class Sampler:
    """CPU seconds and peak RSS of a process and its children."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_rss = 0

    def processes(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self.root, *self.root.children(recursive=True)]
        return []

    def cpu(self) -> float:
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def sample(self) -> None:
        rss = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                rss += process.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)


def start_consumer(
    system: str,
    *,
    proxy: CountingProxy,
    queue: Queue,
    workers: int,
    latency_file: str | None = None,
) -> subprocess.Popen[bytes]:
    env = environment(endpoint=proxy.endpoint, queue=queue, latency_file=latency_file)
    command = consumer_command(system, endpoint=proxy.endpoint, queue=queue, workers=workers)
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """The measurement is over: kill the consumer's whole process group (dramatiq and celery
    fork workers; graceful shutdowns would only wait out a long poll)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def throughput(
    system: str,
    *,
    endpoint: str,
    proxy: CountingProxy,
    count: int,
    workers: int,
    sleep_ms: float,
    timeout: float = 600,
    max_seconds: float | None = None,
) -> dict[str, float]:
    """Drain `count` queued messages; messages/s, CPU s and SQS calls per 1,000, peak RSS.

    With `max_seconds`, a slow system is measured on what it drained in that time."""
    sqs = client(endpoint)
    queue = new_queue(sqs, system)
    if system != "dramatiq":
        queue = queue_url(sqs, queue)
    if fill(system, endpoint=endpoint, queue=queue, count=count, sleep_ms=sleep_ms).wait() != 0:
        raise RuntimeError(f"{system}: filling the queue failed")
    queue = queue_url(sqs, queue)
    consumer = start_consumer(system, proxy=proxy, queue=queue, workers=workers)
    sampler = Sampler(consumer.pid)
    try:
        start_time = start_left = start_cpu = start_calls = None
        first_sample = time.monotonic()
        deadline = first_sample + timeout
        while time.monotonic() < deadline:
            left = remaining(sqs, queue.url)
            now = time.monotonic()
            sampler.sample()
            if start_time is None and left < count:
                start_time, start_left, start_cpu, start_calls = (
                    now,
                    left,
                    sampler.cpu(),
                    proxy.total(),
                )
            if left == 0 or (
                max_seconds and start_time is not None and now - start_time >= max_seconds
            ):
                break
            if consumer.poll() is not None:
                raise RuntimeError(f"{system}: consumer exited with {consumer.returncode}")
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{system}: {left} messages left after {timeout} s")
        elapsed = now - start_time
        drained = start_left - left
        cpu = sampler.cpu() - start_cpu
        calls = proxy.total() - start_calls
    finally:
        stop(consumer)
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=queue.url)
    return {
        "messages_per_second": drained / elapsed,
        "cpu_per_1000": cpu / drained * 1000,
        "calls_per_1000": calls / drained * 1000,
        "peak_rss_mb": sampler.peak_rss / 2**20,
    }


def latency(
    system: str, *, endpoint: str, proxy: CountingProxy, workers: int, rate: float, count: int
) -> dict[str, float]:
    """Enqueue→start latency at a steady low rate, the consumer already idle and polling."""
    sqs = client(endpoint)
    queue = new_queue(sqs, system)
    if system == "dramatiq":  # let dramatiq-sqs create its queue before its consumer starts
        fill(system, endpoint=endpoint, queue=queue, count=1, sleep_ms=0).wait()
    queue = queue_url(sqs, queue)
    latency_file = tempfile.mktemp(suffix=".latency")
    consumer = start_consumer(
        system, proxy=proxy, queue=queue, workers=workers, latency_file=latency_file
    )
    try:
        time.sleep(4)  # started and idle: long-polling
        if (
            fill(
                system,
                endpoint=endpoint,
                queue=queue,
                count=count,
                sleep_ms=0,
                rate=rate,
                latency_file=latency_file,
            ).wait()
            != 0
        ):
            raise RuntimeError(f"{system}: paced enqueue failed")
        deadline = time.monotonic() + 60
        while remaining(sqs, queue.url) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop(consumer)
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=queue.url)
    with open(latency_file, encoding="utf-8") as results:
        values = sorted(float(line) for line in results if line.strip())
    os.unlink(latency_file)
    if not values:
        raise RuntimeError(f"{system}: no latency recorded")
    return {
        "p50_ms": values[len(values) // 2] * 1000,
        "p99_ms": values[min(len(values) - 1, int(len(values) * 0.99))] * 1000,
        "samples": len(values),
    }


def idle(*, endpoint: str, proxy: CountingProxy, seconds: float = 42) -> dict[str, float]:
    """TaskQueue idle: start-up to ready, RSS, and receives per queue per 20 s when empty."""
    sqs = client(endpoint)
    queue = queue_url(sqs, new_queue(sqs, "taskqueue"))
    command = consumer_command("taskqueue", endpoint=proxy.endpoint, queue=queue, workers=8)
    port = _free_port()
    config_path = command[-1]
    with open(config_path, encoding="utf-8") as config_file:
        text = config_file.read().replace("port: 0", f"port: {port}")
    with open(config_path, "w", encoding="utf-8") as config_file:
        config_file.write(text)
    started = time.monotonic()
    consumer = subprocess.Popen(
        command,
        env=environment(endpoint=proxy.endpoint, queue=queue),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            with contextlib.suppress(OSError):
                if (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status
                    == 200
                ):
                    break
            if time.monotonic() - started > 30:
                raise RuntimeError("taskqueue did not become ready")
            time.sleep(0.01)
        ready_after = time.monotonic() - started
        time.sleep(1)
        proxy.reset()
        time.sleep(seconds)
        receives = proxy.snapshot().get("ReceiveMessage", 0)
        rss = psutil.Process(consumer.pid).memory_info().rss / 2**20
    finally:
        stop(consumer)
        sqs.delete_queue(QueueUrl=queue.url)
    return {
        "ready_seconds": ready_after,
        "idle_rss_mb": rss,
        "receives_per_20s": receives / seconds * 20,
    }


def enqueue_rates(*, endpoint: str, count: int = 2000) -> dict[str, float]:
    """Producer.enqueue one by one vs enqueue_many (SendMessageBatch), same payloads."""
    from kube_taskqueue import Producer, SqsSettings

    from bench.apps.tq_app import provider

    sqs = client(endpoint)
    queue = new_queue(sqs, "taskqueue")
    producer = Producer.from_settings(
        SqsSettings(endpoint=endpoint, queuePrefix=queue.name[: -len("bench")])
    )
    task = provider["bench:job"]
    producer.enqueue(task, {})  # warm the connection and the URL cache
    started = time.perf_counter()
    for _ in range(count):
        producer.enqueue(task, {})
    single = count / (time.perf_counter() - started)
    started = time.perf_counter()
    result = producer.enqueue_many(task, [{}] * count)
    batched = count / (time.perf_counter() - started)
    assert result.ok
    sqs.delete_queue(QueueUrl=queue_url(sqs, queue).url)
    return {"single_per_second": single, "batch_per_second": batched}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
