"""Sending tasks: validate the payload, let the task shape the request, set routing, send."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.exceptions
import pydantic

from kube_taskqueue import tracing
from kube_taskqueue.config import ProcessorConfig, SqsSettings
from kube_taskqueue.logs import current_trace_id, new_trace_id
from kube_taskqueue.sqs import MAX_BATCH, QueueUrl, SqsClient, describe_error, make_client
from kube_taskqueue.task import (
    DUE_AT_ATTRIBUTE,
    JOB_NAME_ATTRIBUTE,
    MAX_DELAY_SECONDS,
    TRACE_ID_ATTRIBUTE,
    PayloadError,
    SendRequest,
    Task,
    encode_payload,
)

#: SQS's limit on one message and on one batch request, in bytes.
MAX_MESSAGE_BYTES = 262_144
#: SQS requires FIFO queue names to end so, which lets a send be checked without a call.
FIFO_SUFFIX = ".fifo"


#: How far ahead a task may be sent: SQS keeps a message at most 14 days (its longest
#: retention period; the processor re-sends a waiting message before its own runs out).
MAX_ETA = timedelta(days=14)


class DelayError(ValueError):
    """A delay or ETA that cannot be honoured, found before anything is sent."""


class QueueKindError(ValueError):
    """A message that does not fit its queue's kind, found before anything is sent.

    A FIFO queue needs a message group id on every message; a deduplication id is for
    FIFO queues only (AWS refuses it on a standard queue).
    """

    def __init__(self, *, task: str, queue: str, fifo: bool) -> None:
        self.task = task
        self.queue = queue
        self.fifo = fifo
        if fifo:
            problem = (
                f"queue {queue!r} of task {task!r} is a FIFO queue: every message needs a "
                "group id (group_id=, or SendRequest.group_id in the task's build_message)"
            )
        else:
            problem = (
                f"queue {queue!r} of task {task!r} is a standard queue: a deduplication id "
                "is only for FIFO queues (names ending in .fifo)"
            )
        super().__init__(problem)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SentMessage:
    """A message SQS accepted: its payload's index in the order given, and its SQS id."""

    index: int
    message_id: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class FailedMessage:
    """A message that was not sent, by index: SQS refused it, or its batch's call failed.

    `code` is SQS's error code (`InvalidParameterValue`, `AWS.SimpleQueueService.…`) or, when
    the call itself failed, the exception's name (`EndpointConnectionError`,
    `ConnectionClosedError`, `ReadTimeoutError`…). `maybe_sent` is True when the call failed
    after its request may have reached SQS (a connection lost or a timeout while waiting
    for the answer): the message may be on the queue, so resending it may duplicate it.
    """

    index: int
    code: str
    reason: str
    maybe_sent: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchResult:
    """Outcome of `enqueue_many`: every payload index is in exactly one of the two lists,
    each sorted by index."""

    sent: list[SentMessage]
    failed: list[FailedMessage]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed_indexes(self) -> list[int]:
        """The indexes to send again (see `FailedMessage.maybe_sent` before doing so)."""
        return [item.index for item in self.failed]


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
        """A producer for the SQS of `sqs` (credentials from the standard AWS chain).

        Args:
            sqs: region, endpoint, queue prefix and call timeout.
            queue_urls: URLs by logical queue name, where known; the others are looked up
                once by prefixed name.
        """
        client = make_client(
            region=sqs.region, endpoint=sqs.endpoint, call_timeout_seconds=sqs.call_timeout
        )
        return cls(client=client, queue_prefix=sqs.queue_prefix, queue_urls=queue_urls)

    @classmethod
    def from_config(cls, config: ProcessorConfig) -> Producer:
        """A producer for a processor configuration's SQS and its queues' `url`s."""
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

    def is_fifo(self, queue: str) -> bool:
        """Whether a logical queue is a FIFO queue, by its configured URL or its SQS name."""
        with self._lock:
            url = self._urls.get(queue)
        return (url or self._prefix + queue).endswith(FIFO_SUFFIX)

    def enqueue(
        self,
        task: Task[Any],
        payload: pydantic.BaseModel | Mapping[str, Any],
        *,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        delay: timedelta | None = None,
        eta: datetime | None = None,
    ) -> str:
        """Validate and send one message; returns its SQS message id.

        `group_id` and `deduplication_id` (FIFO queues) seed the `SendRequest` the task's
        `build_message` receives, so a task that sets its own ids still has the last word.
        `delay` (from now) or `eta` (a timezone-aware time) run it later: up to 15 minutes
        through SQS's DelaySeconds, beyond that up to 14 days with the processor keeping the
        message out of sight until then (standard queues only: SQS has no per-message delay
        on FIFO queues). Raises `PayloadError`, `QueueKindError` or `DelayError` before
        sending when the message cannot fit.
        """
        with tracing.sending(task.queue, task=task.name):
            request = self.build_request(
                task,
                payload,
                group_id=group_id,
                deduplication_id=deduplication_id,
                due=_due(delay, eta),
            )
            self._check_kind(task, request)
            response = self._client.send_message(QueueUrl=self.queue_url(task.queue), **request)
        return str(response["MessageId"])

    def enqueue_many(
        self,
        task: Task[Any],
        payloads: Iterable[pydantic.BaseModel | Mapping[str, Any]],
        *,
        delay: timedelta | None = None,
        delays: Sequence[timedelta | datetime | None] | None = None,
    ) -> BatchResult:
        """Validate every payload first, then send in batches of ten (SendMessageBatch).

        Up front, before anything is sent, it raises: `PayloadError` for a payload that does
        not fit (naming its index), `QueueKindError`, and a failed lookup of the queue's URL.
        Once sending has begun it never raises: every payload's outcome is in the result, so
        a caller can resend exactly the failed ones. A message SQS refuses, and every message
        of a batch whose call failed (connection, timeout, throttling, a refused request), is
        in `failed` with its index; the other batches are still sent. `delay` applies to
        every message; `delays` gives one per payload (a timedelta from now, a datetime ETA,
        or None), as `enqueue`'s `delay` and `eta`.
        """
        items = list(payloads)
        if delays is not None and len(delays) != len(items):
            raise DelayError(f"delays has {len(delays)} entries for {len(items)} payloads")
        with tracing.sending(task.queue, task=task.name, count=len(items)):
            return self._enqueue_many(task, items, delay=delay, delays=delays)

    def _enqueue_many(
        self,
        task: Task[Any],
        items: Sequence[pydantic.BaseModel | Mapping[str, Any]],
        *,
        delay: timedelta | None,
        delays: Sequence[timedelta | datetime | None] | None,
    ) -> BatchResult:
        requests = []
        for index, payload in enumerate(items):
            when = delays[index] if delays is not None else delay
            try:
                due = _due(None, when) if isinstance(when, datetime) else _due(when, None)
                requests.append(self.build_request(task, payload, due=due))
            except DelayError as error:
                raise DelayError(f"item {index}: {error}") from error
            except PayloadError as error:
                raise PayloadError(
                    task=task.name,
                    detail=f"item {index}: {error.detail}",
                    validation_error=error.validation_error,
                ) from error
        for request in requests:
            self._check_kind(task, request)
        if not requests:
            return BatchResult(sent=[], failed=[])
        url = self.queue_url(task.queue)
        sent: list[SentMessage] = []
        failed: list[FailedMessage] = []
        for chunk in _chunks(requests):
            entries = [{"Id": str(index), **request} for index, request in chunk]
            try:
                response = self._client.send_message_batch(QueueUrl=url, Entries=entries)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
                # Earlier batches are sent: raising now would lose their record, and a
                # caller's retry of the whole list would send them twice.
                code, maybe_sent = _call_failure(error)
                reason = describe_error(error)
                failed.extend(
                    FailedMessage(index=index, code=code, reason=reason, maybe_sent=maybe_sent)
                    for index, _ in chunk
                )
                continue
            answered: set[int] = set()
            for item in response.get("Successful", []):
                answered.add(int(item["Id"]))
                sent.append(SentMessage(index=int(item["Id"]), message_id=str(item["MessageId"])))
            for item in response.get("Failed", []):
                answered.add(int(item["Id"]))
                failed.append(
                    FailedMessage(
                        index=int(item["Id"]),
                        code=str(item.get("Code", "")),
                        reason=str(item.get("Message", "")),
                    )
                )
            # SQS answers for every entry; should an endpoint not, the message is unknown.
            failed.extend(
                FailedMessage(
                    index=index,
                    code="NoAnswer",
                    reason="SQS did not report on this entry of the batch",
                    maybe_sent=True,
                )
                for index, _ in chunk
                if index not in answered
            )
        sent.sort(key=lambda item: item.index)
        failed.sort(key=lambda item: item.index)
        return BatchResult(sent=sent, failed=failed)

    def build_request(
        self,
        task: Task[Any],
        payload: pydantic.BaseModel | Mapping[str, Any],
        *,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        due: float | None = None,
    ) -> dict[str, Any]:
        """The SendMessage arguments (without QueueUrl) for one payload of a task; `due` is
        when it may run (epoch seconds), None for now."""
        model = task.validate_payload(payload)
        if self.is_fifo(task.queue):  # the task's own rules, unless the sender gave ids
            if group_id is None:
                group_id = task.message_group_id(model)
            if deduplication_id is None:
                deduplication_id = task.message_deduplication_id(model)
        seed = SendRequest(
            body=encode_payload(model), group_id=group_id, deduplication_id=deduplication_id
        )
        request = task.build_message(model, seed)
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
        tracing.inject(attributes)
        arguments: dict[str, Any] = {
            "MessageBody": request.body,
            "MessageAttributes": {
                key: {"DataType": "String", "StringValue": value}
                for key, value in attributes.items()
            },
        }
        if request.delay_seconds is not None:
            arguments["DelaySeconds"] = request.delay_seconds
        if due is not None:
            self._delay(task, arguments, due)
        if request.group_id is not None:
            arguments["MessageGroupId"] = request.group_id
        if request.deduplication_id is not None:
            arguments["MessageDeduplicationId"] = request.deduplication_id
        return arguments

    def _delay(self, task: Task[Any], arguments: dict[str, Any], due: float) -> None:
        remaining = due - time.time()
        if remaining <= 0:
            return
        if self.is_fifo(task.queue):
            raise DelayError(
                f"task {task.name!r} is on FIFO queue {task.queue!r}: SQS has no per-message "
                "delay on FIFO queues (give the queue a delaySeconds instead)"
            )
        arguments["DelaySeconds"] = min(MAX_DELAY_SECONDS, math.ceil(remaining))
        if remaining > MAX_DELAY_SECONDS:
            arguments["MessageAttributes"][DUE_AT_ATTRIBUTE] = {
                "DataType": "Number",
                "StringValue": str(int(due * 1000)),
            }

    def _check_kind(self, task: Task[Any], request: Mapping[str, Any]) -> None:
        fifo = self.is_fifo(task.queue)
        if fifo and "MessageGroupId" not in request:
            raise QueueKindError(task=task.name, queue=task.queue, fifo=True)
        if not fifo and "MessageDeduplicationId" in request:
            raise QueueKindError(task=task.name, queue=task.queue, fifo=False)


def _due(delay: timedelta | None, eta: datetime | None) -> float | None:
    """When a message may run (epoch seconds), from a delay or an ETA; None for now."""
    if delay is not None and eta is not None:
        raise DelayError("give delay or eta, not both")
    if eta is not None:
        if eta.tzinfo is None:
            raise DelayError(f"eta {eta.isoformat()} has no timezone (use e.g. datetime.now(UTC))")
        delay = eta - datetime.now(UTC)
    if delay is None:
        return None
    if delay > MAX_ETA:
        raise DelayError(f"a delay of {delay} is longer than {MAX_ETA.days} days, which SQS keeps")
    return time.time() + delay.total_seconds()


#: Call failures before the request left this process: nothing can have been sent.
_NOT_SENT = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ParamValidationError,
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)


def _call_failure(error: Exception) -> tuple[str, bool]:
    """The code to report for a failed batch call, and whether its messages may be sent."""
    if isinstance(error, botocore.exceptions.ClientError):
        # SQS refused the whole request (throttling, access, a missing queue): it took none
        # of it. A server error (5xx) does not say how far it got.
        code = str(error.response.get("Error", {}).get("Code", "")) or "ClientError"
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return code, status >= 500
    return type(error).__name__, not isinstance(error, _NOT_SENT)


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
