"""The operator's SQS clients (#14 items 11 and 12): one botocore session, a bounded cache
that expires and drops clients of rotated credentials, a total deadline per call and a
bounded number of calls in flight per endpoint (against a loopback server dripping a byte
at a time, which botocore's per-read timeout never stops)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kube_taskqueue_operator.queues import CallDeadlineExceeded, QueueManager, classify
from kube_taskqueue_operator.reconcile import SqsClients
from operator_harness import create_credentials_secret

REGION = "us-east-1"
KEYS = {"AWS_ACCESS_KEY_ID": "one", "AWS_SECRET_ACCESS_KEY": "s1"}


def _access_key(client: Any) -> str:
    return str(client.client._request_signer._credentials.get_frozen_credentials().access_key)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_clients_are_cached_per_endpoint_and_credentials(sqs_endpoint):
    clients = SqsClients(call_timeout=3)
    first = clients.get(region=REGION, endpoint=sqs_endpoint, credentials=KEYS)
    assert clients.get(region=REGION, endpoint=sqs_endpoint, credentials=KEYS) is first
    other = clients.get(region=REGION, endpoint=sqs_endpoint, credentials={})
    assert other is not first and len(clients) == 2
    assert first.client._loader is other.client._loader  # one session's loader: shared models


def test_the_cache_is_bounded_least_recently_used_first():
    clients = SqsClients(call_timeout=3, max_clients=2)
    a = clients.get(region=REGION, endpoint="http://a.invalid", credentials={})
    clients.get(region=REGION, endpoint="http://b.invalid", credentials={})
    assert clients.get(region=REGION, endpoint="http://a.invalid", credentials={}) is a
    clients.get(region=REGION, endpoint="http://c.invalid", credentials={})  # evicts b
    assert len(clients) == 2
    assert clients.get(region=REGION, endpoint="http://a.invalid", credentials={}) is a
    b = clients.get(region=REGION, endpoint="http://b.invalid", credentials={})
    assert len(clients) == 2 and b is not None


def test_clients_expire():
    clock = FakeClock()
    clients = SqsClients(call_timeout=3, ttl_seconds=60, clock=clock)
    first = clients.get(region=REGION, endpoint="http://a.invalid", credentials={})
    clock.now = 59
    assert clients.get(region=REGION, endpoint="http://a.invalid", credentials={}) is first
    clock.now = 61
    assert clients.get(region=REGION, endpoint="http://a.invalid", credentials={}) is not first
    assert len(clients) == 1


def test_rotated_credentials_drop_the_old_client():
    clients = SqsClients(call_timeout=3)
    old = clients.get(region=REGION, endpoint="http://a.invalid", credentials=KEYS, source="ns/s")
    rotated = {"AWS_ACCESS_KEY_ID": "two", "AWS_SECRET_ACCESS_KEY": "s2"}
    new = clients.get(
        region=REGION, endpoint="http://a.invalid", credentials=rotated, source="ns/s"
    )
    assert _access_key(old) == "one" and _access_key(new) == "two"
    assert len(clients) == 1


def test_the_reconciler_uses_rotated_credentials(
    driver, make_manifest, control_plane, kube_client, make_reconciler
):
    import kubernetes

    clients = SqsClients(call_timeout=3)
    driver.reconciler = make_reconciler(clients=clients)
    create_credentials_secret(control_plane, driver.namespace, key_id="first", secret="x")
    document = make_manifest()
    document["spec"]["sqs"]["credentialsSecret"] = "sqs"
    driver.create(document)
    driver.reconcile()
    assert driver.condition("Ready")["status"] == "True"
    kubernetes.client.CoreV1Api(kube_client).delete_namespaced_secret("sqs", driver.namespace)
    create_credentials_secret(control_plane, driver.namespace, key_id="second", secret="y")
    driver.reconcile()
    assert driver.condition("Ready")["status"] == "True"
    assert len(clients) == 1
    (cached,) = clients._clients.values()
    assert _access_key(cached.client) == "second"


class DripServer:
    """Accepts HTTP requests and answers one byte every `interval` seconds, forever."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-Drip: " + b"x" * 10_000
        with connection:
            connection.recv(65536)
            for byte in answer:
                if self._closed.wait(self.interval):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


@pytest.fixture
def drip() -> Iterator[DripServer]:
    server = DripServer()
    yield server
    server.close()


def test_a_dripping_endpoint_fails_the_call_at_its_deadline(drip):
    # connect/read timeouts of 1 s never fire: a byte arrives every 0.2 s.
    clients = SqsClients(call_timeout=1, call_deadline=2)
    client = clients.get(region=REGION, endpoint=drip.endpoint, credentials=KEYS)
    started = time.monotonic()
    with pytest.raises(CallDeadlineExceeded) as raised:
        client.get_queue_url(QueueName="work")
    assert time.monotonic() - started < 3
    error = classify(raised.value, queue="work")
    assert (error.reason, error.temporary) == ("SQSUnavailable", True)
    assert "did not complete within 2 s" in str(error)


def test_one_slow_endpoint_cannot_take_every_worker(drip, sqs_endpoint, queues):
    clients = SqsClients(call_timeout=1, call_deadline=2, calls_per_endpoint=2)
    slow = clients.get(region=REGION, endpoint=drip.endpoint, credentials=KEYS)
    fast = clients.get(region=REGION, endpoint=sqs_endpoint, credentials=KEYS)
    queues.sqs.create_queue(QueueName=queues.prefix + "fast")
    with ThreadPoolExecutor(max_workers=8) as pool:
        stuck = [pool.submit(slow.get_queue_url, QueueName="work") for _ in range(6)]
        time.sleep(0.5)
        started = time.monotonic()
        manager = QueueManager(fast, owner="ns/app", owner_uid=None, adopt=True)
        assert manager.depth(queues.url("fast")) == (0, 0, 0)
        assert time.monotonic() - started < 1  # the other endpoint is served at once
        for future in stuck:
            with pytest.raises(CallDeadlineExceeded):
                future.result(timeout=5)
    assert drip.connections <= 2  # at most two calls ever reached the slow endpoint
