"""One owner per SQS queue, whatever the order and timing of the applies (issue #14).

- two creates at once are both admitted (neither is stored when the other is admitted), and
  the first stored keeps the queue: the other alone is Invalid;
- a clash that got past admission never punishes the owner, and neither object is kept from
  being labelled, edited (the owner) or deleted;
- endpoint aliases are one service;
- admission waits for no reconcile: it answers while every executor thread hangs on SQS.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from harness import wait_for
from operator_harness import condition, get


def _create(plane, document: dict[str, Any]) -> Any:
    return plane.kubectl_run("create", "-f", "-", input=json.dumps(document), check=False)


def _invalid(plane, namespace: str, name: str) -> str | None:
    """ "True"/"False" once the operator has judged the object, else None."""
    found = condition(get(plane, "tq", name, namespace), "Invalid")
    return None if found is None else found["status"]


def _create_together(plane, documents: list[dict[str, Any]]) -> list[Any]:
    """Create the documents from one thread each, released at the same instant."""
    barrier = threading.Barrier(len(documents))
    results: list[Any] = [None] * len(documents)

    def create(i: int) -> None:
        barrier.wait()
        results[i] = _create(plane, documents[i])

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(documents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _rank(obj: dict[str, Any]) -> tuple[str, str]:
    return (obj["metadata"]["creationTimestamp"], obj["metadata"]["uid"])


def test_two_concurrent_creates_of_one_queue_leave_one_owner(
    control_plane, start_operator, namespace, make_manifest, prefix
):
    start_operator()
    for round_ in range(5):
        documents = [make_manifest(f"r{round_}-{side}") for side in ("a", "b")]
        for document in documents:
            document["spec"]["sqs"]["queuePrefix"] = f"{prefix}r{round_}-"
        results = _create_together(control_plane, documents)
        created = [
            d["metadata"]["name"]
            for d, r in zip(documents, results, strict=True)
            if r.returncode == 0
        ]
        assert created, [r.stderr for r in results]
        for r in results:
            if r.returncode != 0:  # the other was stored and indexed first: refused
                assert "is also declared by TaskQueue" in r.stderr
        verdicts = {
            name: wait_for(lambda n=name: _invalid(control_plane, namespace, n), timeout=60)
            for name in created
        }
        owners = [name for name, invalid in verdicts.items() if invalid == "False"]
        assert len(owners) == 1, f"round {round_}: {verdicts}"
        if len(created) == 2:
            objects = {n: get(control_plane, "tq", n, namespace) for n in created}
            first = min(created, key=lambda n: _rank(objects[n]))
            assert owners == [first], f"round {round_}: the first stored must win"
            (loser,) = [n for n in created if n != first]
            message = condition(objects[loser], "Invalid")["message"]
            assert f"{namespace}/{first}" in message


def test_a_clash_past_admission_leaves_the_owner_alone_and_both_editable_and_deletable(
    control_plane, start_operator, namespace, make_manifest
):
    owner, junior = make_manifest("owner"), make_manifest("junior")
    # No webhook yet: both are stored, the owner first.
    assert _create(control_plane, owner).returncode == 0
    wait_for(lambda: get(control_plane, "tq", "owner", namespace), timeout=10)
    time.sleep(1.1)  # creationTimestamp counts whole seconds: make "first" unambiguous
    assert _create(control_plane, junior).returncode == 0
    start_operator()

    assert wait_for(lambda: _invalid(control_plane, namespace, "junior"), timeout=60) == "True"
    assert wait_for(lambda: _invalid(control_plane, namespace, "owner"), timeout=60) == "False"
    message = condition(get(control_plane, "tq", "junior", namespace), "Invalid")["message"]
    assert f"{namespace}/owner" in message

    for name in ("owner", "junior"):
        control_plane.kubectl_run("label", "tq", name, "-n", namespace, "team=billing")
    # The owner's spec may change (its queue stays its own); the junior's may not keep the
    # clash.
    control_plane.kubectl_run(
        "patch", "tq", "owner", "-n", namespace, "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/queues/1/pollInterval", "value": 3}]',
    )  # fmt: skip
    refused = control_plane.kubectl_run(
        "patch", "tq", "junior", "-n", namespace, "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/queues/1/pollInterval", "value": 3}]',
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and f"{namespace}/owner" in refused.stderr
    # Deleting either ends: kopf's finalizer removal (an UPDATE) is admitted.
    for name in ("junior", "owner"):
        control_plane.kubectl_run("delete", "tq", name, "-n", namespace, "--timeout=60s")
        assert get(control_plane, "tq", name, namespace) is None


def test_an_endpoint_alias_is_the_same_queue(
    control_plane, start_operator, namespace, make_manifest, sqs_endpoint
):
    start_operator()
    first = make_manifest("first")
    assert _create(control_plane, first).returncode == 0
    wait_for(lambda: _invalid(control_plane, namespace, "first"), timeout=60)
    alias = make_manifest("alias")
    alias["spec"]["sqs"]["endpoint"] = sqs_endpoint.upper().replace("HTTP://", "http://") + "/"
    result = _create(control_plane, alias)
    assert result.returncode != 0
    assert f"is also declared by TaskQueue {namespace}/first" in result.stderr


class Blackhole:
    """A loopback listener that accepts connections and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


def test_admission_answers_while_reconciles_hang_on_sqs(
    control_plane, start_operator, namespace, make_manifest, prefix
):
    blackhole = Blackhole()
    process = None
    try:
        hanging = []
        for i in range(24):
            document = make_manifest(f"hang-{i}")
            document["spec"]["sqs"]["endpoint"] = f"http://127.0.0.1:{blackhole.port}"
            document["spec"]["sqs"]["queuePrefix"] = f"{prefix}h{i}-"
            hanging.append(document)
        listing = {"apiVersion": "v1", "kind": "List", "items": hanging}
        assert _create(control_plane, listing).returncode == 0
        # Its resume reconciles now hold every executor thread (8), each SQS call hanging
        # for the 25 s call timeout, twice (boto3's retry): three rounds of them, longer
        # than the API server waits for a webhook (30 s).
        process = start_operator(sqs_call_timeout=25)
        time.sleep(1)
        unrelated = make_manifest("unrelated")
        unrelated["spec"]["sqs"]["queuePrefix"] = f"{prefix}u-"
        # The API server's own webhook timeout is the bound: past it, the create fails with
        # "context deadline exceeded" instead of being admitted.
        result = _create(control_plane, unrelated)
        assert result.returncode == 0, result.stderr
        invalid = make_manifest("invalid")
        invalid["spec"]["sqs"]["queuePrefix"] = f"{prefix}u2-"
        invalid["spec"]["processors"] = [
            {"name": "main", "tasks": ["record:job", "other:job"]},
            {"name": "half", "tasks": ["record_async:job"]},
        ]
        refused = _create(control_plane, invalid)
        assert refused.returncode != 0 and "split across processors" in refused.stderr
    finally:
        if process is not None:
            process.kill()
            process.stop()
        blackhole.close()
        # No operator is left to finalize them: let them go.
        for i in range(24):
            control_plane.kubectl_run(
                "patch", "tq", f"hang-{i}", "-n", namespace, "--type=merge",
                "-p", '{"metadata": {"finalizers": null}}', check=False,
            )  # fmt: skip
        control_plane.kubectl_run(
            "delete", "tq", "--all", "-n", namespace, "--wait=false", check=False
        )
