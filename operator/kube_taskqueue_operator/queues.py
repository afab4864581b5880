"""The SQS adapter of the operator: create queues idempotently, repair their attributes and
tags, report their depth, and retain or delete them with the resource.

Attributes are compared semantically (numbers as numbers, policies as parsed JSON), so a
reconcile that changes nothing makes no SetQueueAttributes call and never loops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

import botocore.exceptions
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


def classify(error: Exception, *, queue: str) -> QueueError:
    """Turn an SQS/botocore error into a temporary or permanent QueueError."""
    if isinstance(error, QueueError):
        return error
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        text = str(error.response.get("Error", {}).get("Message", ""))
        if code in _DELETED_RECENTLY:
            return QueueError(
                f"queue {queue!r} was deleted less than a minute ago; SQS forbids reusing its "
                "name until then, retrying",
                reason="QueueDeletedRecently",
                temporary=True,
                delay=DELETED_NAME_WAIT_SECONDS,
            )
        return QueueError(
            f"SQS refused an operation on queue {queue!r}: {code}: {text}",
            reason=code or "SQSError",
            temporary=is_transient(error),
        )
    if is_transient(error) or isinstance(error, botocore.exceptions.BotoCoreError):
        return QueueError(
            f"SQS is unreachable for queue {queue!r}: {error}",
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

    def depth(self, url: str) -> tuple[int, int]:
        """(visible, in flight) messages; QueueMissing when the queue was deleted."""
        try:
            attributes = self._client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        except Exception as error:
            if _code(error) in _MISSING_CODES:
                raise QueueMissing(url) from error
            raise classify(error, queue=url.rsplit("/", 1)[-1]) from error
        return (
            int(attributes.get("ApproximateNumberOfMessages", 0)),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
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

    # -- internals -------------------------------------------------------------------------

    def _url(self, name: str) -> str | None:
        try:
            return str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        except botocore.exceptions.ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise

    def _owned(self, url: str) -> bool:
        tags = self._client.list_queue_tags(QueueUrl=url).get("Tags", {})
        owner: str | None = tags.get(TAG_OWNER)
        return owner == self._owner

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


def _names(definition: QueueDefinition) -> list[str]:
    names = [definition.name]
    if definition.dead_letter is not None:
        names.append(definition.dead_letter.name)
    return names
