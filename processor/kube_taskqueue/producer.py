"""Sending tasks: validate the payload, let the task shape the request, set routing, send."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pydantic

from kube_taskqueue.config import ProcessorConfig, SqsSettings
from kube_taskqueue.logs import current_trace_id, new_trace_id
from kube_taskqueue.sqs import MAX_BATCH, QueueUrl, SqsClient, make_client
from kube_taskqueue.task import (
    JOB_NAME_ATTRIBUTE,
    TRACE_ID_ATTRIBUTE,
    PayloadError,
    SendRequest,
    Task,
    encode_payload,
)

#: SQS's limit on one message and on one batch request, in bytes.
MAX_MESSAGE_BYTES = 262_144


@dataclasses.dataclass(frozen=True, kw_only=True)
class SentMessage:
    index: int
    message_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class FailedMessage:
    index: int
    code: str
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchResult:
    """Outcome of `enqueue_many`, per payload index in the order given."""

    sent: list[SentMessage]
    failed: list[FailedMessage]

    @property
    def ok(self) -> bool:
        return not self.failed


class Producer:
    """Sends task messages to their queues. Thread-safe; reuse one per process."""

    def __init__(
        self,
        *,
        client: SqsClient,
        queue_prefix: str = "",
        queue_urls: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._prefix = queue_prefix
        self._urls: dict[str, QueueUrl] = {k: QueueUrl(v) for k, v in (queue_urls or {}).items()}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, sqs: SqsSettings, *, queue_urls: Mapping[str, str] | None = None
    ) -> Producer:
        client = make_client(
            region=sqs.region, endpoint=sqs.endpoint, call_timeout_seconds=sqs.call_timeout
        )
        return cls(client=client, queue_prefix=sqs.queue_prefix, queue_urls=queue_urls)

    @classmethod
    def from_config(cls, config: ProcessorConfig) -> Producer:
        urls = {name: q.url for name, q in config.queues.items() if q.url}
        return cls.from_settings(config.sqs, queue_urls=urls)

    def queue_url(self, queue: str) -> QueueUrl:
        """The URL of a logical queue: configured, or looked up by prefixed name (cached)."""
        with self._lock:
            url = self._urls.get(queue)
        if url is None:
            response = self._client.get_queue_url(QueueName=self._prefix + queue)
            url = QueueUrl(str(response["QueueUrl"]))
            with self._lock:
                self._urls[queue] = url
        return url

    def enqueue(self, task: Task[Any], payload: pydantic.BaseModel | Mapping[str, Any]) -> str:
        """Validate and send one message; returns its SQS message id."""
        request = self.build_request(task, payload)
        response = self._client.send_message(QueueUrl=self.queue_url(task.queue), **request)
        return str(response["MessageId"])

    def enqueue_many(
        self, task: Task[Any], payloads: Iterable[pydantic.BaseModel | Mapping[str, Any]]
    ) -> BatchResult:
        """Validate every payload first, then send in batches of ten (SendMessageBatch).

        A payload that fails validation raises before anything is sent; a message SQS refuses
        is reported in `failed` with its index, the others are sent.
        """
        requests = []
        for index, payload in enumerate(payloads):
            try:
                requests.append(self.build_request(task, payload))
            except PayloadError as error:
                raise PayloadError(task=task.name, detail=f"item {index}: {error.detail}") from None
        url = self.queue_url(task.queue)
        sent: list[SentMessage] = []
        failed: list[FailedMessage] = []
        for chunk in _chunks(requests):
            entries = [{"Id": str(index), **request} for index, request in chunk]
            response = self._client.send_message_batch(QueueUrl=url, Entries=entries)
            sent.extend(
                SentMessage(index=int(item["Id"]), message_id=str(item["MessageId"]))
                for item in response.get("Successful", [])
            )
            failed.extend(
                FailedMessage(
                    index=int(item["Id"]),
                    code=str(item.get("Code", "")),
                    reason=str(item.get("Message", "")),
                )
                for item in response.get("Failed", [])
            )
        sent.sort(key=lambda item: item.index)
        failed.sort(key=lambda item: item.index)
        return BatchResult(sent=sent, failed=failed)

    def build_request(
        self, task: Task[Any], payload: pydantic.BaseModel | Mapping[str, Any]
    ) -> dict[str, Any]:
        """The SendMessage arguments (without QueueUrl) for one payload of a task."""
        model = task.validate_payload(payload)
        request = task.build_message(model, SendRequest(body=encode_payload(model)))
        if len(request.body.encode()) > MAX_MESSAGE_BYTES:
            raise PayloadError(
                task=task.name,
                detail=f"the message body is {len(request.body.encode())} bytes, "
                f"SQS takes at most {MAX_MESSAGE_BYTES}",
            )
        # Set after the task's builder ran, so no builder can drop routing or tracing.
        attributes = {
            **request.attributes,
            JOB_NAME_ATTRIBUTE: task.name,
            TRACE_ID_ATTRIBUTE: current_trace_id() or new_trace_id(),
        }
        arguments: dict[str, Any] = {
            "MessageBody": request.body,
            "MessageAttributes": {
                key: {"DataType": "String", "StringValue": value}
                for key, value in attributes.items()
            },
        }
        if request.delay_seconds is not None:
            arguments["DelaySeconds"] = request.delay_seconds
        if request.group_id is not None:
            arguments["MessageGroupId"] = request.group_id
        if request.deduplication_id is not None:
            arguments["MessageDeduplicationId"] = request.deduplication_id
        return arguments


def _chunks(
    requests: Sequence[dict[str, Any]],
) -> Iterable[list[tuple[int, dict[str, Any]]]]:
    """Batches of at most ten that also stay under SQS's 256 KiB per request."""
    chunk: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for index, request in enumerate(requests):
        request_size = len(request["MessageBody"].encode()) + sum(
            len(k) + len(v["StringValue"]) for k, v in request["MessageAttributes"].items()
        )
        if chunk and (len(chunk) == MAX_BATCH or size + request_size > MAX_MESSAGE_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((index, request))
        size += request_size
    if chunk:
        yield chunk
