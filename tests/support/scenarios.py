"""Fault-injection scenarios for the processor's guarantees: at-least-once, nothing lost,
duplicates only where a crash forces them.

Each scenario enqueues messages with unique ids, runs real `kube-taskqueue run` processes against
an SQS server, injects its fault, then reconciles the sample app's durable execution log
(`start|done|fail <id> <pid> <receive count>`) with the queue. The CI tests run them small on
moto; `make soak` runs them large on ElasticMQ and writes bench/SOAK.md.
"""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from harness import ProcessorProcess, Records, processor_config, wait_for
from kube_taskqueue import Producer, SqsSettings
from proxy import OutageProxy

Spawn = Callable[[dict[str, Any]], ProcessorProcess]


@dataclasses.dataclass
class Figures:
    scenario: str
    messages: int
    processed: int = 0
    duplicates: int = 0
    lost: int = 0
    seconds: float = 0.0
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.details.items())
        return (
            f"[{self.scenario}] messages {self.messages}, processed {self.processed}, "
            f"duplicates {self.duplicates}, lost {self.lost}, {self.seconds:.1f} s"
            + (f", {extra}" if extra else "")
        )


class Bench:
    """One scenario's queues, producer and record log, under a fresh prefix."""

    def __init__(self, endpoint: str, records: Records, spawn: Spawn) -> None:
        self.endpoint = endpoint
        self.prefix = f"r{uuid.uuid4().hex[:8]}-"
        self.records = records
        self.spawn = spawn
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        self.producer = Producer.from_settings(
            SqsSettings(endpoint=endpoint, queuePrefix=self.prefix)
        )

    def create(self, name: str, *, max_receive_count: int, visibility: int = 30) -> str:
        dlq = self.sqs.create_queue(QueueName=f"{self.prefix}{name}-dlq")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        redrive = json.dumps(
            {"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)}
        )
        return str(
            self.sqs.create_queue(
                QueueName=self.prefix + name,
                Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": redrive},
            )["QueueUrl"]
        )

    def counts(self, name: str) -> tuple[int, int]:
        url = self.sqs.get_queue_url(QueueName=self.prefix + name)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def enqueue(self, ids: list[str], **payload: Any) -> None:
        from sampleapp import provider

        task = provider["record:job"]
        for start in range(0, len(ids), 500):
            result = self.producer.enqueue_many(
                task, [{"id": i, **payload} for i in ids[start : start + 500]]
            )
            assert result.ok, result.failed

    def config(
        self, *, workers: int = 8, visibility: int = 10, poll: int = 1, **extra: Any
    ) -> dict[str, Any]:
        return processor_config(
            endpoint=extra.pop("endpoint", self.endpoint),
            prefix=self.prefix,
            tasks=["record:job", "record_async:job"],
            workers=workers,
            queues={
                "work": {
                    "pollInterval": poll,
                    "messageVisibilityTimeout": visibility,
                    "retryBackoffInitial": 0,
                    # An unknown JobName waits 300 s per receive by default (a rollout's old
                    # pods); the poison scenario wants it dead-lettered within the run.
                    "unknownTaskDelay": 1,
                }
            },
            **extra,
        )

    def drained(self, name: str = "work") -> bool:
        return self.counts(name) == (0, 0)

    def reconcile(self, figures: Figures, ids: list[str], *, killed: set[int]) -> Figures:
        """Every id done at least once; extra executions only where a killed process forces them."""
        events = self.records.events()
        done = Counter(item for kind, item, _, _ in events if kind == "done")
        figures.processed = len(set(done) & set(ids))
        figures.lost = len(set(ids) - set(done))
        figures.duplicates = sum(count - 1 for item, count in done.items() if count > 1)
        touched_by_killed = {
            name for kind, name, pid, _ in events if pid in killed and kind in ("start", "done")
        }
        unexplained = [
            item for item, count in done.items() if count > 1 and item not in touched_by_killed
        ]
        figures.details["unexplained duplicates"] = len(unexplained)
        return figures


def kill_restart(
    bench: Bench, *, messages: int, kills: int, workers: int = 8, sleep: float = 0.01, seed: int = 7
) -> Figures:
    """SIGKILL the processor at random points while messages flow; restart it each time."""
    rng = random.Random(seed)
    bench.create("work", max_receive_count=1000, visibility=2)
    ids = [f"k{i}" for i in range(messages)]
    bench.enqueue(ids, sleep=sleep)
    figures = Figures(scenario="SIGKILL and restart", messages=messages)
    started = time.monotonic()
    killed: set[int] = set()
    for _ in range(kills):
        process = bench.spawn(bench.config(workers=workers, visibility=2))
        process.wait_ready()
        # Kill at a random point once some work has been done.
        target = len(bench.records.ids("done")) + rng.randint(1, max(2, messages // (kills * 3)))
        wait_for(
            lambda target=target: len(bench.records.ids("done")) >= target,
            timeout=120,
            interval=0.01,
        )
        process.process.send_signal(signal.SIGKILL)
        process.process.wait(10)
        killed.add(process.process.pid)
    final = bench.spawn(bench.config(workers=workers, visibility=2))
    final.wait_ready()
    wait_for(
        lambda: set(bench.records.ids("done")) >= set(ids),
        timeout=max(120, messages / 20),
        interval=0.2,
    )
    wait_for(bench.drained, timeout=60, interval=0.5)
    final.process.send_signal(signal.SIGTERM)
    assert final.process.wait(60) == 0, final.output()
    figures.seconds = time.monotonic() - started
    figures.details["kills"] = kills
    figures.details["dead-lettered"] = bench.counts("work-dlq")[0]
    return bench.reconcile(figures, ids, killed=killed)


def sigterm_handoff(bench: Bench, *, long_tasks: int = 2, waiting: int = 4) -> Figures:
    """SIGTERM with long tasks in flight: they finish; the rest is taken over at once."""
    bench.create("work", max_receive_count=100, visibility=60)
    ids = [f"t{i}" for i in range(long_tasks + waiting)]
    bench.enqueue(ids, sleep=3)
    figures = Figures(scenario="SIGTERM hand-off", messages=len(ids))
    first = bench.spawn(bench.config(workers=long_tasks, visibility=60))
    first.wait_ready()
    wait_for(lambda: len(bench.records.ids("start")) == long_tasks, timeout=60)
    term_at = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    second = bench.spawn(bench.config(workers=len(ids), visibility=60))
    second.wait_ready()
    first_pid, second_pid = first.process.pid, second.process.pid
    taken = wait_for(
        lambda: [e for e in bench.records.events() if e[0] == "start" and e[2] == second_pid],
        timeout=60,
        interval=0.05,
    )
    handoff = time.monotonic() - term_at
    assert first.process.wait(60) == 0, first.output()
    wait_for(lambda: set(bench.records.ids("done")) >= set(ids), timeout=60)
    finished_by_first = [
        e[1] for e in bench.records.events() if e[0] == "done" and e[2] == first_pid
    ]
    assert len(finished_by_first) == long_tasks, "tasks running at SIGTERM must finish there"
    figures.seconds = handoff
    figures.details["taken over after (s)"] = round(handoff, 2)
    figures.details["finished during shutdown"] = len(finished_by_first)
    assert taken
    return bench.reconcile(figures, ids, killed=set())


def outage(bench: Bench, *, sqs_port: int, messages: int, seconds: float) -> Figures:
    """The SQS endpoint drops every connection for `seconds` mid-run, then comes back.

    The visibility window outlasts the outage, so the deletes held back during it still
    count when SQS returns: nothing is run twice. (An outage longer than the window makes
    the finished-but-undeleted messages visible again: run twice, never lost.)"""
    visibility = int(max(10, seconds * 2))
    bench.create("work", max_receive_count=100, visibility=visibility)
    ids = [f"o{i}" for i in range(messages)]
    proxy = OutageProxy(sqs_port)
    figures = Figures(scenario=f"SQS endpoint gone for {seconds:g} s", messages=messages)
    try:
        process = bench.spawn(
            bench.config(endpoint=proxy.endpoint, workers=4, visibility=visibility)
        )
        process.wait_ready()
        half = len(ids) // 2
        bench.enqueue(ids[:half], sleep=0.01)
        wait_for(
            lambda: len(set(bench.records.ids("done"))) >= half // 2, timeout=60, interval=0.05
        )
        proxy.down()
        bench.enqueue(ids[half:], sleep=0.01)
        time.sleep(seconds)
        assert process.process.poll() is None, "the processor must survive the outage"
        proxy.up()
        back = time.monotonic()
        done_before = len(bench.records.ids("done"))
        wait_for(lambda: len(bench.records.ids("done")) > done_before, timeout=60, interval=0.05)
        figures.details["recovered after (s)"] = round(time.monotonic() - back, 2)
        wait_for(lambda: set(bench.records.ids("done")) >= set(ids), timeout=120)
        wait_for(bench.drained, timeout=60, interval=0.5)
        assert process.get("/healthz")[0] == 200
    finally:
        proxy.close()
    figures.seconds = seconds
    return bench.reconcile(figures, ids, killed=set())


def poison(bench: Bench, *, good: int = 20) -> Figures:
    """Invalid JSON, wrong shape, unknown JobName, a 256 KiB body: each ends in the
    dead-letter queue after maxReceiveCount, none is lost, good messages keep flowing."""
    url = bench.create("work", max_receive_count=2, visibility=10)
    bodies = {
        "invalid JSON": ("{not json", "record:job"),
        "wrong payload shape": ('{"id": 42}', "record:job"),
        "unknown JobName": ('{"id": "x"}', "nobody:job"),
        "no JobName": ('{"id": "y"}', None),
        "256 KiB body": ("x" * (262_144 - 200), "record:job"),
    }
    poison_ids = {}
    for label, (body, job) in bodies.items():
        attributes = {"JobName": {"DataType": "String", "StringValue": job}} if job else {}
        poison_ids[
            bench.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)[
                "MessageId"
            ]
        ] = label
    ids = [f"g{i}" for i in range(good)]
    bench.enqueue(ids)
    figures = Figures(scenario="poison messages", messages=good + len(bodies))
    started = time.monotonic()
    process = bench.spawn(bench.config(workers=4))
    process.wait_ready()
    wait_for(lambda: set(bench.records.ids("done")) >= set(ids), timeout=60)
    dead: dict[str, Any] = {}
    dlq = bench.sqs.get_queue_url(QueueName=bench.prefix + "work-dlq")["QueueUrl"]

    def collected() -> bool:
        for message in bench.sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", []):
            dead[message["MessageId"]] = message
        return set(dead) >= set(poison_ids)

    wait_for(collected, timeout=90, interval=0.3)
    figures.seconds = time.monotonic() - started
    assert process.get("/healthz")[0] == 200
    _, metrics = process.get("/metrics")
    unroutable = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("taskqueue_messages_unroutable_total")
    )
    figures.details["dead-lettered"] = len(set(dead) & set(poison_ids))
    figures.details["unroutable receipts counted"] = int(unroutable)
    figures = bench.reconcile(figures, ids, killed=set())
    figures.lost += len(set(poison_ids) - set(dead))
    figures.processed += len(set(dead) & set(poison_ids))
    return figures


def two_processors(bench: Bench, *, messages: int, sleep: float = 0.02) -> Figures:
    """Two replicas on one queue: no message processed twice while both are healthy."""
    bench.create("work", max_receive_count=100, visibility=5)
    ids = [f"p{i}" for i in range(messages)]
    bench.enqueue(ids, sleep=sleep)
    figures = Figures(scenario="two processors on one queue", messages=messages)
    started = time.monotonic()
    processes = [bench.spawn(bench.config(workers=4, visibility=5)) for _ in range(2)]
    for process in processes:
        process.wait_ready()
    wait_for(lambda: set(bench.records.ids("done")) >= set(ids), timeout=max(120, messages / 10))
    wait_for(bench.drained, timeout=60, interval=0.5)
    figures.seconds = time.monotonic() - started
    pids = Counter(pid for kind, _, pid, _ in bench.records.events() if kind == "done")
    figures.details["share"] = "/".join(str(pids[p.process.pid]) for p in processes)
    starts = Counter(bench.records.ids("start"))
    figures.details["started twice"] = sum(1 for count in starts.values() if count > 1)
    return bench.reconcile(figures, ids, killed=set())


def failing_handlers(bench: Bench, *, messages: int) -> Figures:
    """Handlers that raise (then succeed on retry) and handlers that run past the
    visibility window (renewed): retried on the same message, never run twice at once."""
    bench.create("work", max_receive_count=5, visibility=2)
    flaky = [f"f{i}" for i in range(messages // 2)]
    slow = [f"s{i}" for i in range(messages - len(flaky))]
    bench.enqueue(flaky, fail_times=1)
    bench.enqueue(slow, sleep=3)
    figures = Figures(scenario="raising and slow handlers", messages=messages)
    started = time.monotonic()
    process = bench.spawn(bench.config(workers=8, visibility=2))
    process.wait_ready()
    ids = flaky + slow
    wait_for(lambda: set(bench.records.ids("done")) >= set(ids), timeout=120)
    wait_for(bench.drained, timeout=60, interval=0.5)
    figures.seconds = time.monotonic() - started
    starts = Counter(bench.records.ids("start"))
    figures.details["slow tasks started twice"] = sum(1 for i in slow if starts[i] > 1)
    figures.details["failed attempts retried"] = len(bench.records.ids("fail"))
    figures.details["dead-lettered"] = bench.counts("work-dlq")[0]
    return bench.reconcile(figures, ids, killed=set())


def write_report(path: Path, figures: list[Figures], header: str) -> None:
    lines = [
        header,
        "",
        "| scenario | messages | processed | duplicates | lost | time (s) | details |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for f in figures:
        details = "; ".join(f"{k}: {v}" for k, v in f.details.items())
        lines.append(
            f"| {f.scenario} | {f.messages} | {f.processed} | {f.duplicates} | {f.lost} | {f.seconds:.1f} | {details} |"
        )
    path.write_text("\n".join(lines) + "\n")
