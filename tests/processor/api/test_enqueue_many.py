"""`enqueue_many` reports every message, even when a later batch of ten fails in transport.

Before, an error on the second SendMessageBatch raised out of `enqueue_many` and the record of
the first batch (already on the queue) was lost, so a caller's retry of the list sent it twice.
A loopback proxy between the producer and moto fails exactly the batch carrying a marker.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sampleapp
from harness import wait_for
from kube_taskqueue import PayloadError, Producer, SqsSettings
from proxy import LoopbackProxy, pipe

MARKER = "fail-this-batch"

REFUSAL = json.dumps(
    {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "The queue is gone."}
).encode()


class BatchFaultProxy(LoopbackProxy):
    """Carries HTTP/1.1 requests whole, one at a time; a request whose body holds `marker`
    is failed: `drop` closes the connection without forwarding it (the client sees the
    connection lost), `refuse` answers it with an SQS error (nothing forwarded either)."""

    def __init__(self, target_port: int, *, marker: str, mode: str) -> None:
        self._marker = marker.encode()
        self._mode = mode
        self.failed = 0
        self.forwarded = 0
        super().__init__(target_port)

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = _content_length(head)
                while len(rest) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    rest += data
                body, buffer = rest[:length], rest[length:]
                if self._marker in body:
                    self.failed += 1
                    if self._mode == "refuse":
                        client.sendall(
                            b"HTTP/1.1 400 Bad Request\r\n"
                            b"Content-Type: application/x-amz-json-1.0\r\n"
                            b"x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender\r\n"
                            + f"Content-Length: {len(REFUSAL)}\r\n".encode()
                            + b"Connection: close\r\n\r\n"
                            + REFUSAL
                        )
                    return
                upstream.sendall(head + b"\r\n\r\n" + body)
                self.forwarded += 1
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


@pytest.fixture
def fault_proxy(moto_port: int) -> Iterator[Any]:
    made: list[BatchFaultProxy] = []

    def make(mode: str) -> BatchFaultProxy:
        proxy = BatchFaultProxy(moto_port, marker=MARKER, mode=mode)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def payloads() -> list[dict[str, str]]:
    """25 payloads: batches 0-9, 10-19 (index 13 carries the marker) and 20-24."""
    return [{"id": MARKER if index == 13 else f"m{index}"} for index in range(25)]


def bodies_on_queue(queues: Any, name: str) -> list[str]:
    return sorted(json.loads(m["Body"])["id"] for m in queues.drain(name, wait=0.5))


def test_a_batch_lost_in_transport_is_reported_and_the_other_batches_are_sent(
    fault_proxy, sqs_endpoint, prefix, queues
):
    queues.create("work")
    proxy = fault_proxy("drop")
    # The URL is known up front, so every call of the test goes through the proxy's batches.
    producer = Producer.from_settings(
        SqsSettings(endpoint=proxy.endpoint, queuePrefix=prefix, callTimeout=5),
        queue_urls={"work": queues.url("work")},
    )
    task = sampleapp.provider["record:job"]

    result = producer.enqueue_many(task, payloads())  # before: raised ConnectionClosedError

    assert not result.ok
    assert [sent.index for sent in result.sent] == [*range(10), *range(20, 25)]
    assert result.failed_indexes == list(range(10, 20))
    assert len({sent.message_id for sent in result.sent}) == 15
    assert {failure.code for failure in result.failed} == {"ConnectionClosedError"}
    # The request may have reached SQS before the connection went: a resend may duplicate.
    assert all(failure.maybe_sent for failure in result.failed)
    assert "cannot reach SQS" in result.failed[0].reason
    assert proxy.failed >= 1  # the batch, and botocore's own retry of it

    wait_for(lambda: queues.counts("work") == (15, 0))
    expected = sorted(f"m{index}" for index in [*range(10), *range(20, 25)])
    assert bodies_on_queue(queues, "work") == expected

    # The caller resends exactly what failed (here straight to SQS): no duplicates.
    direct = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    retry = direct.enqueue_many(task, [payloads()[index] for index in result.failed_indexes])
    assert retry.ok and len(retry.sent) == 10
    wait_for(lambda: sum(queues.counts("work")) == 25)


def test_a_batch_sqs_refuses_as_a_whole_is_reported_with_its_code(fault_proxy, prefix, queues):
    queues.create("work")
    proxy = fault_proxy("refuse")
    producer = Producer.from_settings(
        SqsSettings(endpoint=proxy.endpoint, queuePrefix=prefix, callTimeout=5),
        queue_urls={"work": queues.url("work")},
    )

    result = producer.enqueue_many(sampleapp.provider["record:job"], payloads())

    assert [sent.index for sent in result.sent] == [*range(10), *range(20, 25)]
    assert result.failed_indexes == list(range(10, 20))
    [code] = {failure.code for failure in result.failed}
    assert code in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
    # SQS answered: it took none of the batch, so resending cannot duplicate.
    assert not any(failure.maybe_sent for failure in result.failed)
    assert "SQS refused the request" in result.failed[0].reason
    wait_for(lambda: queues.counts("work") == (15, 0))


def test_a_payload_that_does_not_fit_raises_before_anything_is_sent(sqs_endpoint, prefix, queues):
    queues.create("work")
    producer = Producer.from_settings(SqsSettings(endpoint=sqs_endpoint, queuePrefix=prefix))
    items: list[dict[str, Any]] = [{"id": f"m{index}"} for index in range(15)]
    items[12] = {"id": 5}
    with pytest.raises(PayloadError, match=r"item 12: id: Input should be a valid string") as error:
        producer.enqueue_many(sampleapp.provider["record:job"], items)
    assert error.value.validation_error is not None
    assert queues.counts("work") == (0, 0)


def test_nothing_to_send_makes_no_call():
    # No client at all: an empty list must not even look the queue up.
    producer = Producer(client=None, queue_prefix="p-")  # type: ignore[arg-type]
    result = producer.enqueue_many(sampleapp.provider["record:job"], [])
    assert result.ok and result.sent == [] and result.failed == []
