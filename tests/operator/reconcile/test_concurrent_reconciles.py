"""The drift timer and the update handler reconciling one TaskQueue at once (kopf runs them
concurrently): one at a time, and a body older than what was reconciled never puts the old
spec back."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes
from kube_taskqueue_operator import failpoints
from kube_taskqueue_operator.failpoints import Failpoints


class Gate(Failpoints):
    """Holds the reconcile running in the thread named `stale` right after its queues."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.reached = threading.Event()

    def hit(self, name: str) -> None:
        if name == failpoints.AFTER_QUEUES and threading.current_thread().name == "stale":
            self.reached.set()
            self.open.wait(10)


def _replicas(api: Any, namespace: str) -> int:
    apps = kubernetes.client.AppsV1Api(api)
    return int(apps.read_namespaced_deployment("app-main", namespace).spec.replicas)


def _edit(driver, make_manifest, replicas: int) -> dict[str, Any]:
    spec = make_manifest()["spec"]
    spec["processors"][0]["replicas"] = replicas
    driver.patch_spec("app", spec)
    return driver.get()


def test_a_timer_holding_the_old_body_does_not_undo_an_edit_in_flight(
    driver, make_manifest, make_reconciler, kube_client
):
    gate = Gate()
    reconciler = make_reconciler(failpoints=gate)
    driver.create(make_manifest())
    stale = driver.get()  # what the timer holds: replicas 2, generation 1
    timer = threading.Thread(
        target=reconciler.reconcile,
        args=(stale,),
        kwargs={"peers": [], "emit": driver.emit},
        name="stale",
    )
    timer.start()
    assert gate.reached.wait(10)
    fresh = _edit(driver, make_manifest, 4)  # the update handler, meanwhile
    update = threading.Thread(
        target=reconciler.reconcile,
        args=(fresh,),
        kwargs={"peers": [], "emit": driver.emit},
        name="fresh",
    )
    update.start()
    time.sleep(0.5)
    gate.open.set()
    timer.join(10)
    update.join(10)
    assert _replicas(kube_client, driver.namespace) == 4


def test_a_reconcile_of_an_older_generation_is_skipped(
    driver, make_manifest, make_reconciler, kube_client
):
    driver.create(make_manifest())
    stale = driver.get()
    fresh = _edit(driver, make_manifest, 4)
    reconciler = make_reconciler()
    assert reconciler.reconcile(fresh, peers=[], emit=driver.emit).status["observedGeneration"] == 2
    assert reconciler.reconcile(stale, peers=[], emit=driver.emit).status == {}
    assert _replicas(kube_client, driver.namespace) == 4
