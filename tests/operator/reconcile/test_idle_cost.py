"""What a settled TaskQueue costs while nothing changes (issue #21): a drift check compares the
live objects and writes nothing, and calls SQS only once the queue drift interval has passed;
an edit is reconciled in full at once."""

from __future__ import annotations

from typing import Any

import pytest

from bench.countproxy import CountingProxy


@pytest.fixture
def proxy(moto_port: int) -> Any:
    counting = CountingProxy(moto_port)
    yield counting
    counting.close()


def test_a_drift_check_of_a_settled_taskqueue_calls_no_sqs_and_writes_nothing(
    driver, make_manifest, make_reconciler, proxy
):
    driver.reconciler = make_reconciler(queue_drift_interval=3600)
    document = make_manifest()
    document["spec"]["sqs"]["endpoint"] = proxy.endpoint
    driver.create(document)
    first = driver.reconciler.reconcile(driver.get(), peers=[], emit=driver.emit)
    driver.workloads.patch_status(namespace=driver.namespace, name="app", status=first.status)
    assert proxy.total() > 0
    live = {
        d["metadata"]["name"]: d["metadata"]["resourceVersion"]
        for d in driver.workloads.deployments(driver.reconciler.resolve(driver.get()))
    }

    proxy.reset()
    routine = driver.reconciler.reconcile(driver.get(), peers=[], emit=driver.emit, routine=True)
    assert proxy.snapshot() == {}  # no SQS call
    assert routine.status["conditions"] == driver.get()["status"]["conditions"]
    after = {
        d["metadata"]["name"]: d["metadata"]["resourceVersion"]
        for d in driver.workloads.deployments(driver.reconciler.resolve(driver.get()))
    }
    assert after == live  # no Deployment written

    # An edit (a new generation) is checked in SQS at once, even on the drift timer.
    queues = document["spec"]["queues"]
    queues[0]["messageVisibilityTimeout"] = 12
    driver.patch_spec("app", {"queues": queues})
    driver.reconciler.reconcile(driver.get(), peers=[], emit=driver.emit, routine=True)
    assert proxy.snapshot().get("SetQueueAttributes", 0) >= 1
