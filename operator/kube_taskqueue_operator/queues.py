"""The SQS adapter of the operator: create queues idempotently, repair their attributes and
tags, report their depth, and retain or delete them with the resource.

Attributes are compared semantically (numbers as numbers, policies as parsed JSON), so a
reconcile that changes nothing makes no SetQueueAttributes call and never loops.

Clients come from `SqsClients`: one shared botocore session, a bounded LRU of clients that
expire, and every call under a total deadline with a bounded number of calls in flight per
endpoint (botocore's read timeout is per read: an endpoint dripping a byte a second would
hold a call, and the kopf worker running it, forever).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import botocore.config
import botocore.exceptions
import botocore.session
from kube_taskqueue.sqs import is_transient

from kube_taskqueue_operator.resource.naming import TAG_OWNER, TAG_OWNER_UID
from kube_taskqueue_operator.resource.render import QueueDefinition

log = logging.getLogger(__name__)

_MISSING_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_DELETED_RECENTLY = frozenset(
    {"AWS.SimpleQueueService.QueueDeletedRecently", "QueueDeletedRecently"}
)
_JSON_ATTRIBUTES = frozenset({"RedrivePolicy", "RedriveAllowPolicy", "Policy"})
#: How long SQS forbids reusing a deleted queue's name.
DELETED_NAME_WAIT_SECONDS = 60


class QueueError(Exception):
    """An SQS problem for one queue. `temporary` ones are retried with a delay."""

    def __init__(self, message: str, *, reason: str, temporary: bool, delay: float = 30) -> None:
        super().__init__(message)
        self.reason = reason
        self.temporary = temporary
        self.delay = delay


class QueueMissing(QueueError):
    """A queue the status names no longer exists (deleted behind the operator's back)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"queue {url} does not exist", reason="QueueMissing", temporary=True)
        self.url = url


def _code(error: Exception) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


class Depth(NamedTuple):
    """A queue's approximate messages: waiting, received and not yet deleted, and sent with a
    delay that has not passed yet."""

    visible: int
    in_flight: int
    delayed: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueState:
    queue: str
    name: str
    url: str
    arn: str
    dead_letter_url: str | None = None
    changes: tuple[str, ...] = ()


def same_attribute(name: str, current: str | None, desired: str) -> bool:
    if current is None:
        return desired == ""
    if name in _JSON_ATTRIBUTES:
        try:
            parsed: Any = _normalise(json.loads(current or "{}"))
            return bool(parsed == _normalise(json.loads(desired or "{}")))
        except ValueError:
            return current == desired
    if current.lstrip("-").isdigit() and desired.lstrip("-").isdigit():
        return int(current) == int(desired)
    return current.lower() == desired.lower()


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


#: Most characters of a remote error message copied into status and events.
REMOTE_TEXT_LIMIT = 160
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def remote_text(text: object, *, limit: int = REMOTE_TEXT_LIMIT) -> str:
    """A bounded, printable summary of text a remote server chose: the status and events of a
    TaskQueue are read by its tenant, so what an endpoint answers must not reach them verbatim
    (control characters, megabytes, or anything it reflects)."""
    printable = "".join(c if c.isprintable() and c.isascii() else " " for c in str(text))
    collapsed = " ".join(printable.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 1] + "…"


def classify(error: Exception, *, queue: str) -> QueueError:
    """Turn an SQS/botocore error into a temporary or permanent QueueError, whose message
    carries only a sanitised summary of what the server said."""
    if isinstance(error, QueueError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        text = remote_text(error.response.get("Error", {}).get("Message", ""))
        if code in _DELETED_RECENTLY:
            return QueueError(
                f"queue {queue!r} was deleted less than a minute ago; SQS forbids reusing its "
                "name until then, retrying",
                reason="QueueDeletedRecently",
                temporary=True,
                delay=DELETED_NAME_WAIT_SECONDS,
            )
        code = code if _ERROR_CODE.fullmatch(code) else ""
        return QueueError(
            f"SQS refused an operation on queue {queue!r}: {code or 'unrecognised error'}: {text}",
            reason=code or "SQSError",
            temporary=is_transient(error),
        )
    if is_transient(error) or isinstance(error, botocore.exceptions.BotoCoreError):
        return QueueError(
            f"SQS is unreachable for queue {queue!r}: {remote_text(error)}",
            reason="SQSUnavailable",
            temporary=True,
            delay=10,
        )
    raise error


class QueueManager:
    """Ensures the queues of one TaskQueue. `client` is a boto3 SQS client."""

    def __init__(self, client: Any, *, owner: str, owner_uid: str | None, adopt: bool) -> None:
        self._client = client
        self._owner = owner
        self._owner_uid = owner_uid
        self._adopt = adopt

    def ensure(self, definition: QueueDefinition) -> QueueState:
        """Create or repair a queue and its dead-letter queue (the dead-letter queue first,
        so the redrive policy can point at it)."""
        try:
            dead_letter_url = None
            attributes = dict(definition.attributes)
            changes: list[str] = []
            if definition.dead_letter is not None:
                dlq = definition.dead_letter
                dead_letter_url, dead_letter_arn, dlq_changes = self._ensure_one(
                    dlq.name, dlq.attributes, dlq.tags
                )
                changes.extend(dlq_changes)
                attributes["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": dead_letter_arn,
                        "maxReceiveCount": definition.max_receive_count,
                    }
                )
            else:
                attributes["RedrivePolicy"] = ""
            url, arn, main_changes = self._ensure_one(definition.name, attributes, definition.tags)
            changes.extend(main_changes)
        except Exception as error:
            raise classify(error, queue=definition.name) from error
        return QueueState(
            queue=definition.logical,
            name=definition.name,
            url=url,
            arn=arn,
            dead_letter_url=dead_letter_url,
            changes=tuple(changes),
        )

    def depth(self, url: str) -> Depth:
        """Approximate messages by state; QueueMissing when the queue was deleted."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except Exception as error:
            if _code(error) in _MISSING_CODES:
                raise QueueMissing(url) from error
            raise classify(error, queue=url.rsplit("/", 1)[-1]) from error
        return Depth(
            visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        )

    def release(self, definition: QueueDefinition) -> None:
        """deletionPolicy Retain: keep the queues, remove our ownership tags."""
        for name in _names(definition):
            url = self._url(name)
            if url is not None and self._owned(url):
                self._client.untag_queue(QueueUrl=url, TagKeys=[TAG_OWNER, TAG_OWNER_UID])
                log.info("released queue %s (kept, untagged)", name)

    def delete(self, definition: QueueDefinition) -> None:
        """deletionPolicy Delete: the main queue first, then its dead-letter queue."""
        for name in _names(definition):
            url = self._url(name)
            if url is not None and self._owned(url):
                self._client.delete_queue(QueueUrl=url)
                log.info("deleted queue %s", name)

    def retire(self, url: str, *, delete: bool) -> str | None:
        """A queue that left the spec: delete it or untag it, if it is still ours; says what
        was done (None when it is gone or not ours)."""
        name = url.rsplit("/", 1)[-1]
        try:
            if not self._owned(url):
                return None
            if delete:
                self._client.delete_queue(QueueUrl=url)
                return f"deleted queue {name} (no longer in the spec)"
            self._client.untag_queue(QueueUrl=url, TagKeys=[TAG_OWNER, TAG_OWNER_UID])
            return f"released queue {name} (no longer in the spec; kept, untagged)"
        except Exception as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise classify(error, queue=name) from error

    # -- internals -------------------------------------------------------------------------

    def _url(self, name: str) -> str | None:
        try:
            return str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        except botocore.exceptions.ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise

    def _owned(self, url: str) -> bool:
        """Tagged as ours: the owner name, and the owner uid when both sides know one (a
        TaskQueue deleted and re-created under the same name is another owner)."""
        tags = self._client.list_queue_tags(QueueUrl=url).get("Tags", {})
        owner: str | None = tags.get(TAG_OWNER)
        uid: str | None = tags.get(TAG_OWNER_UID)
        if owner != self._owner:
            return False
        if uid and self._owner_uid and uid != self._owner_uid:
            log.warning("queue %s is tagged for another %s (uid %s); left alone", url, owner, uid)
            return False
        return True

    def _ensure_one(
        self, name: str, attributes: Mapping[str, str], tags: Mapping[str, str]
    ) -> tuple[str, str, list[str]]:
        url = self._url(name)
        if url is None:
            creatable = {k: v for k, v in attributes.items() if v != ""}
            url = str(
                self._client.create_queue(QueueName=name, Attributes=creatable, tags=dict(tags))[
                    "QueueUrl"
                ]
            )
            log.info("created queue %s", name)
            return url, self._arn(url), [f"created queue {name}"]
        current_tags = self._client.list_queue_tags(QueueUrl=url).get("Tags", {})
        owner = current_tags.get(TAG_OWNER)
        if owner is not None and owner != self._owner:
            raise QueueError(
                f"queue {name!r} belongs to TaskQueue {owner}, not {self._owner}",
                reason="QueueOwnedElsewhere",
                temporary=False,
            )
        changes = []
        if owner is None:
            if not self._adopt:
                raise QueueError(
                    f"queue {name!r} already exists and is not managed by this TaskQueue; set "
                    "spec.adoptExistingQueues: true to take it over",
                    reason="QueueNotOwned",
                    temporary=False,
                )
            changes.append(f"adopted queue {name}")
        current = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        if current.get("FifoQueue", "false").lower() != attributes.get("FifoQueue", "false"):
            kind = "FIFO" if current.get("FifoQueue") == "true" else "standard"
            raise QueueError(
                f"queue {name!r} exists as a {kind} queue; FIFO-ness is fixed when a queue is "
                "created (FIFO names end in .fifo)",
                reason="QueueTypeMismatch",
                temporary=False,
            )
        differing = {
            key: value
            for key, value in attributes.items()
            if key != "FifoQueue" and not same_attribute(key, current.get(key), value)
        }
        if differing:
            self._client.set_queue_attributes(QueueUrl=url, Attributes=differing)
            changes.append(f"set {', '.join(sorted(differing))} of queue {name}")
        missing_tags = {k: v for k, v in tags.items() if current_tags.get(k) != v}
        if missing_tags:
            self._client.tag_queue(QueueUrl=url, Tags=missing_tags)
            if owner is not None:
                changes.append(f"tagged queue {name}")
        return url, str(current.get("QueueArn") or self._arn(url)), changes

    def _arn(self, url: str) -> str:
        return str(
            self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        )


class CallDeadlineExceeded(botocore.exceptions.BotoCoreError):
    """An SQS call that did not finish within its total deadline (or found no free slot for
    its endpoint in that time); classified as SQSUnavailable, retried."""

    fmt = "{operation} on {endpoint} did not complete within {deadline:g} s"


class _EndpointSlots:
    """Calls in flight per endpoint: a slow endpoint holds at most `limit` threads."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def get(self, endpoint: str) -> threading.BoundedSemaphore:
        with self._lock:
            slot = self._slots.get(endpoint)
            if slot is None:
                slot = self._slots[endpoint] = threading.BoundedSemaphore(self._limit)
            return slot


class DeadlineClient:
    """A boto3 SQS client whose every call ends within `deadline` seconds.

    The call runs in a thread of its own; the caller waits at most the deadline (a slot of
    the endpoint included) and gets CallDeadlineExceeded. A thread left on a stuck call holds
    its endpoint's slot until the call ends, so one bad endpoint ties up at most its slots,
    never the operator's workers."""

    def __init__(
        self, client: Any, *, endpoint: str, deadline: float, slots: threading.BoundedSemaphore
    ) -> None:
        self.client = client
        self._endpoint = endpoint
        self._deadline = deadline
        self._slots = slots

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        method = getattr(self.client, operation)
        if not callable(method):
            return method  # type: ignore[no-any-return]

        def call(**kwargs: Any) -> Any:
            start = time.monotonic()
            if not self._slots.acquire(timeout=self._deadline):
                raise CallDeadlineExceeded(
                    operation=operation, endpoint=self._endpoint, deadline=self._deadline
                )
            done = threading.Event()
            result: dict[str, Any] = {}

            def run() -> None:
                try:
                    result["value"] = method(**kwargs)
                except BaseException as error:  # handed to the caller
                    result["error"] = error
                finally:
                    self._slots.release()
                    done.set()

            threading.Thread(target=run, name=f"sqs-{operation}", daemon=True).start()
            if not done.wait(max(0.0, self._deadline - (time.monotonic() - start))):
                raise CallDeadlineExceeded(
                    operation=operation, endpoint=self._endpoint, deadline=self._deadline
                )
            if "error" in result:
                raise result["error"]
            return result["value"]

        return call


@dataclasses.dataclass
class _Cached:
    client: DeadlineClient
    created: float
    key: str


class SqsClients:
    """SQS clients per region, endpoint and credentials, built from one botocore session
    (its loaders and service models are what make a client cost ~8 MiB).

    At most `max_clients` are kept (least recently used go first), each for `ttl_seconds`;
    a new set of credentials from the same `source` (a credentials Secret) drops the client
    of the old set, so rotated credentials are used at once and the old client is freed."""

    def __init__(
        self,
        *,
        call_timeout: float,
        call_deadline: float | None = None,
        calls_per_endpoint: int = 4,
        max_clients: int = 32,
        ttl_seconds: float = 900,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = call_timeout
        self.deadline = call_deadline if call_deadline is not None else 3 * call_timeout
        self._max = max_clients
        self._ttl = ttl_seconds
        self._clock = clock
        self._session = botocore.session.get_session()
        self._slots = _EndpointSlots(calls_per_endpoint)
        self._calls_per_endpoint = calls_per_endpoint
        self._clients: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._by_source: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def get(
        self,
        *,
        region: str,
        endpoint: str | None,
        credentials: Mapping[str, str],
        source: str | None = None,
    ) -> DeadlineClient:
        key = hashlib.sha256(
            repr((region, endpoint, sorted(credentials.items()))).encode()
        ).hexdigest()
        now = self._clock()
        with self._lock:
            if source is not None:
                source = f"{region}|{endpoint}|{source}"
                previous = self._by_source.get(source)
                if previous is not None and previous != key:
                    self._clients.pop(previous, None)  # rotated credentials
                self._by_source[source] = key
            cached = self._clients.get(key)
            if cached is not None and now - cached.created < self._ttl:
                self._clients.move_to_end(key)
                return cached.client
            client = DeadlineClient(
                self._create(region=region, endpoint=endpoint, credentials=credentials),
                endpoint=endpoint or f"sqs.{region}",
                deadline=self.deadline,
                slots=self._slots.get(endpoint or f"sqs.{region}"),
            )
            self._clients[key] = _Cached(client=client, created=now, key=key)
            self._clients.move_to_end(key)
            self._expire(now)
            return client

    def _expire(self, now: float) -> None:
        for key in [k for k, c in self._clients.items() if now - c.created >= self._ttl]:
            del self._clients[key]
        while len(self._clients) > self._max:
            self._clients.popitem(last=False)
        live = set(self._clients)
        self._by_source = {s: k for s, k in self._by_source.items() if k in live}

    def _create(self, *, region: str, endpoint: str | None, credentials: Mapping[str, str]) -> Any:
        return self._session.create_client(
            "sqs",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
            config=botocore.config.Config(
                connect_timeout=self._timeout,
                read_timeout=self._timeout,
                retries={"mode": "standard", "max_attempts": 2},
                # As many connections as calls may be in flight (botocore keeps 10).
                max_pool_connections=max(self._calls_per_endpoint, 10),
            ),
        )


def _names(definition: QueueDefinition) -> list[str]:
    names = [definition.name]
    if definition.dead_letter is not None:
        names.append(definition.dead_letter.name)
    return names
