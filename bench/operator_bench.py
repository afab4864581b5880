"""Operator benchmarks on the test control plane and the benchmark's SQS server: apply→Ready
for one TaskQueue, 200 TaskQueues at once, and the operator's cost while idle."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from controlplane import ControlPlane
from kube_taskqueue_operator.resource.crd import CRD_PATH
from operator_harness import OperatorProcess

#: The binaries of the test control plane the operator benchmarks use (no helm).
CONTROL_PLANE = ("etcd", "kube-apiserver", "kubectl")


def manifest(name: str, namespace: str, endpoint: str) -> dict[str, Any]:
    prefix = f"o{uuid.uuid4().hex[:8]}-"
    return {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "registry.example.test/app:1",
            "app": "app.tasks:provider",
            "sqs": {"region": "us-east-1", "endpoint": endpoint, "queuePrefix": prefix},
            "queues": [{"name": "work", "deadLetter": {"maxReceiveCount": 3}}],
            "tasks": [{"name": "work:job", "queue": "work"}],
            "processors": [{"name": "main", "tasks": ["work:job"]}],
        },
    }


def ready_names(plane: ControlPlane, namespace: str) -> set[str]:
    items = json.loads(plane.kubectl_run("get", "tq", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    return {
        item["metadata"]["name"]
        for item in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
    }


#: TaskQueue counts of the scale table (issue #21): one queue with a dead-letter queue each.
SCALE_COUNTS = (200, 1000, 5000)


def scale_benchmark(
    count: int, *, endpoint: str, log: Callable[[str], None], idle_seconds: float = 60
) -> dict[str, Any]:
    """`count` TaskQueues applied at once on a fresh control plane and operator (default
    intervals: drift 180 s, status 30 s): seconds until all are Ready, then the operator's
    CPU, RSS and SQS calls per minute while nothing changes."""
    from bench.countproxy import CountingProxy

    proxy = CountingProxy(int(endpoint.rsplit(":", 1)[1]))
    plane = ControlPlane(required=CONTROL_PLANE)
    plane.start()
    operator = None
    try:
        plane.kubectl_run("apply", "--server-side", "-f", str(CRD_PATH))
        plane.kubectl_run("wait", "--for=condition=Established", "crd/taskqueues.taskqueue.dev")
        operator = OperatorProcess(
            plane, Path(tempfile.mkdtemp()), webhook_enabled="false", log_format="text",
            drift_interval=180, status_interval=30, queue_drift_interval=900,
        )  # fmt: skip
        operator.wait_ready(timeout=120)
        plane.kubectl_run("create", "namespace", "scale")
        documents = [manifest(f"s{i}", "scale", proxy.endpoint) for i in range(count)]
        log(f"operator: {count} TaskQueues at once")
        started = time.monotonic()
        for first in range(0, count, 500):
            plane.kubectl_run(
                "apply", "-f", "-",
                input="\n---\n".join(json.dumps(d) for d in documents[first : first + 500]),
            )  # fmt: skip
        while len(ready_names(plane, "scale")) < count:
            if time.monotonic() - started > 1800:
                raise RuntimeError(f"{count} TaskQueues not Ready in 30 min")
            # Listing every TaskQueue costs the API server (and so the operator beside it)
            # more the more there are: poll less often at larger counts.
            time.sleep(max(2.0, count / 1000))
        ready_seconds = time.monotonic() - started
        process = psutil.Process(operator.process.pid)
        time.sleep(10)
        proxy.reset()
        cpu_before, wall_before = sum(process.cpu_times()[:2]), time.monotonic()
        time.sleep(idle_seconds)
        wall = time.monotonic() - wall_before
        return {
            "count": count,
            "ready_seconds": ready_seconds,
            "idle_cpu_percent": (sum(process.cpu_times()[:2]) - cpu_before) / wall * 100,
            "rss_mb": process.memory_info().rss / 2**20,
            "sqs_calls_per_minute": proxy.total() / wall * 60,
            "sqs_calls_per_minute_by_action": {
                action: calls / wall * 60 for action, calls in proxy.snapshot().items()
            },
        }
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()
        proxy.close()


def operator_benchmarks(
    *, endpoint: str, quick: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    runs, bulk = (3, 20) if quick else (20, 200)
    plane = ControlPlane(required=CONTROL_PLANE)
    plane.start()
    directory = Path(tempfile.mkdtemp())
    operator = None
    try:
        plane.kubectl_run("apply", "--server-side", "-f", str(CRD_PATH))
        plane.kubectl_run("wait", "--for=condition=Established", "crd/taskqueues.taskqueue.dev")
        # No webhook: measure the reconcile, not TLS set-up; long timers, as in production.
        operator = OperatorProcess(
            plane,
            directory,
            webhook_enabled="false",
            drift_interval=180,
            status_interval=30,
            log_format="text",
        )
        operator.wait_ready()
        plane.kubectl_run("create", "namespace", "single")
        durations = []
        log(f"operator: apply → Ready, {runs} runs")
        for index in range(runs):
            name = f"tq{index}"
            started = time.monotonic()
            plane.kubectl_run(
                "apply", "-f", "-", input=json.dumps(manifest(name, "single", endpoint))
            )
            while name not in ready_names(plane, "single"):
                if time.monotonic() - started > 60:
                    raise RuntimeError(f"{name} not Ready in 60 s")
                time.sleep(0.05)
            durations.append(time.monotonic() - started)
        durations.sort()
        plane.kubectl_run("create", "namespace", "bulk")
        log(f"operator: {bulk} TaskQueues at once")
        stream = "\n---\n".join(
            json.dumps(manifest(f"bulk{i}", "bulk", endpoint)) for i in range(bulk)
        )
        started = time.monotonic()
        plane.kubectl_run("apply", "-f", "-", input=stream)
        while len(ready_names(plane, "bulk")) < bulk:
            if time.monotonic() - started > 600:
                raise RuntimeError("bulk TaskQueues not Ready in 600 s")
            time.sleep(0.5)
        bulk_seconds = time.monotonic() - started
        log("operator: idle cost with all of them")
        process = psutil.Process(operator.process.pid)
        time.sleep(5)
        cpu_before, wall_before = sum(process.cpu_times()[:2]), time.monotonic()
        time.sleep(30 if not quick else 5)
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        idle_cpu = cpu / (time.monotonic() - wall_before) * 100
        rss = process.memory_info().rss / 2**20
    finally:
        if operator is not None:
            operator.stop()
        plane.stop()
    scale = [
        scale_benchmark(count, endpoint=endpoint, log=log, idle_seconds=10 if quick else 60)
        for count in ((20,) if quick else SCALE_COUNTS)
    ]
    return {
        "scale": scale,
        "apply_runs": runs,
        "apply_ready_p50": statistics.median(durations),
        "apply_ready_p90": durations[int(len(durations) * 0.9) - 1]
        if len(durations) > 1
        else durations[0],
        "bulk": bulk,
        "bulk_seconds": bulk_seconds,
        "idle_rss_mb": rss,
        "idle_cpu_percent": idle_cpu,
    }
