"""Reconcile one TaskQueue: validate, ensure its queues, apply its workloads, report status.

Level-based and idempotent: the same function runs on create, update, resume and the drift
timer, so whatever was changed or deleted out of band is put back. An invalid resource gets
condition Invalid and nothing is created or changed for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import boto3
import botocore.config

from kube_taskqueue_operator import conditions, failpoints
from kube_taskqueue_operator.failpoints import Failpoints
from kube_taskqueue_operator.queues import (
    QueueError,
    QueueManager,
    QueueMissing,
    QueueState,
    classify,
)
from kube_taskqueue_operator.resource.defaults import SqsDefaults, with_defaults
from kube_taskqueue_operator.resource.models import TaskQueue
from kube_taskqueue_operator.resource.render import queue_plan, render
from kube_taskqueue_operator.resource.validation import InvalidDocument, parse, validate_against
from kube_taskqueue_operator.workloads import WorkloadError, Workloads

log = logging.getLogger(__name__)

#: Reason of the conditions the status timer sets when a queue was deleted out of band.
QUEUE_MISSING = "QueueMissing"

#: (type, reason, message) of a Kubernetes event; type is Normal or Warning.
Event = tuple[str, str, str]
Emit = Callable[[str, str, str], None]


@dataclasses.dataclass(kw_only=True)
class Outcome:
    status: dict[str, Any]
    retry_after: float | None = None
    """Seconds until a temporary problem should be retried; None when settled."""
    invalid: bool = False


class SqsClients:
    """boto3 SQS clients per endpoint, region and credentials (clients are costly to build)."""

    def __init__(self, *, call_timeout: float) -> None:
        self._timeout = call_timeout
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, *, region: str, endpoint: str | None, credentials: Mapping[str, str]) -> Any:
        key = hashlib.sha256(
            repr((region, endpoint, sorted(credentials.items()))).encode()
        ).hexdigest()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                session = boto3.session.Session(
                    aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
                    aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
                    aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
                )
                client = session.client(
                    "sqs",
                    region_name=region,
                    endpoint_url=endpoint,
                    config=botocore.config.Config(
                        connect_timeout=self._timeout,
                        read_timeout=self._timeout,
                        retries={"mode": "standard", "max_attempts": 2},
                    ),
                )
                self._clients[key] = client
            return client


class Reconciler:
    def __init__(
        self,
        *,
        workloads: Workloads,
        clients: SqsClients,
        defaults: SqsDefaults,
        failpoints: Failpoints | None = None,
    ) -> None:
        self._workloads = workloads
        self._clients = clients
        self._defaults = defaults
        self.failpoints = failpoints or Failpoints()

    def resolve(self, body: Mapping[str, Any]) -> TaskQueue:
        """Parse a TaskQueue body and fill in the operator's defaults."""
        return with_defaults(parse(body), self._defaults)

    def reconcile(
        self, body: Mapping[str, Any], *, peers: Iterable[Mapping[str, Any]], emit: Emit
    ) -> Outcome:
        generation = body.get("metadata", {}).get("generation")
        current = body.get("status", {}).get("conditions", [])
        try:
            resource = self.resolve(body)
            problems = [str(p.message) for p in validate_against(resource, self._peers(peers))]
        except InvalidDocument as error:
            problems = [str(p.message) for p in error.problems]
        if problems:
            message = "; ".join(problems)
            emit("Warning", "Invalid", message)
            return Outcome(
                invalid=True,
                status={
                    "observedGeneration": generation,
                    "conditions": conditions.merge(
                        current,
                        [
                            conditions.condition(
                                conditions.READY,
                                False,
                                reason="Invalid",
                                message=message,
                                generation=generation,
                            ),
                            conditions.condition(
                                conditions.INVALID,
                                True,
                                reason="ValidationFailed",
                                message=message,
                                generation=generation,
                            ),
                        ],
                    ),
                },
            )

        base = {
            "observedGeneration": generation,
            "queueCount": len(resource.spec.queues),
            "processorCount": len(resource.spec.processors),
        }
        try:
            states = self.ensure_queues(resource)
            self.failpoints.hit(failpoints.AFTER_QUEUES)
            objects = render(resource)
            changes = [change for state in states for change in state.changes]
            changes += self._workloads.apply(
                resource,
                objects,
                after_first=lambda: self.failpoints.hit(failpoints.AFTER_CONFIGMAP),
            )
            changes += self._workloads.prune(resource, objects)
            processors = self._workloads.processor_replicas(resource)
        except (QueueError, WorkloadError) as error:
            emit("Warning", error.reason, str(error))
            return Outcome(
                retry_after=error.delay if error.temporary else None,
                status={
                    **base,
                    "conditions": conditions.merge(
                        current, _failed(error.reason, str(error), generation=generation)
                    ),
                },
            )
        if changes:
            emit("Normal", "Reconciled", "; ".join(changes))
        return Outcome(
            status={
                **base,
                "queues": [self._queue_status(resource, state) for state in states],
                "processors": processors,
                "conditions": conditions.merge(
                    current,
                    _healthy(
                        f"{len(states)} queues, {len(processors)} processors in place",
                        generation=generation,
                    ),
                ),
            }
        )

    def ensure_queues(self, resource: TaskQueue) -> list[QueueState]:
        manager = self._manager(resource)
        return [manager.ensure(definition) for definition in queue_plan(resource)]

    def refresh(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Queue depths and replica counts, for the status timer (no changes made).

        A queue deleted behind the operator's back shows as condition Degraded/QueueMissing
        (and Ready False) until the drift timer re-creates it; other SQS trouble keeps the
        last figures (the reconcile reports it)."""
        resource = self.resolve(body)
        status = body.get("status", {})
        queues, missing = self._depths(resource, status.get("queues", []))
        result: dict[str, Any] = {
            "queues": queues,
            "processors": self._workloads.processor_replicas(resource),
        }
        current = status.get("conditions", [])
        generation = status.get("observedGeneration")
        if missing:
            message = (
                f"{'; '.join(missing)}: deleted outside the operator; the next drift check "
                "re-creates it"
            )
            result["conditions"] = conditions.merge(
                current, _failed(QUEUE_MISSING, message, generation=generation)
            )
        elif _reason(current, conditions.DEGRADED) == QUEUE_MISSING:
            # The queue is back (the drift check re-created it): clear what this timer set,
            # in case its write landed after the drift check's.
            result["conditions"] = conditions.merge(
                current, _healthy("the missing queues are back", generation=generation)
            )
        return result

    def _depths(
        self, resource: TaskQueue, entries: Iterable[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Status queue entries with fresh depths, and what names the missing queues."""
        try:
            manager = self._manager(resource)
        except (QueueError, WorkloadError) as error:
            log.warning("queue depths not refreshed: %s", error)
            return [dict(entry) for entry in entries], []
        queues: list[dict[str, Any]] = []
        missing: list[str] = []
        for entry in entries:
            refreshed = dict(entry)
            queues.append(refreshed)
            if not entry.get("url"):
                continue
            try:
                messages, in_flight = manager.depth(entry["url"])
            except QueueMissing:
                name = str(entry["url"]).rsplit("/", 1)[-1]
                missing.append(f"SQS queue {name!r} of queue {entry.get('name')!r} is gone")
                refreshed.update(approximateMessages=None, approximateInFlight=None)
            except QueueError as error:
                log.warning("depth of queue %s not refreshed: %s", entry.get("name"), error)
            else:
                refreshed.update(approximateMessages=messages, approximateInFlight=in_flight)
        return queues, missing

    def finalize(self, body: Mapping[str, Any], *, emit: Emit) -> None:
        """Deletion: retain (untag) or delete the queues, as the resource's policy says.
        Raises QueueError or WorkloadError when SQS or the credentials Secret cannot be
        reached (the deletion is retried)."""
        try:
            resource = self.resolve(body)
        except InvalidDocument:
            return  # never valid, so nothing was created
        manager = self._manager(resource)
        for definition in queue_plan(resource):
            try:
                if resource.spec.deletion_policy == "Delete":
                    manager.delete(definition)
                else:
                    manager.release(definition)
            except Exception as error:
                raise classify(error, queue=definition.name) from error
        emit(
            "Normal",
            "QueuesDeleted" if resource.spec.deletion_policy == "Delete" else "QueuesRetained",
            f"deletionPolicy {resource.spec.deletion_policy}: "
            + ", ".join(d.name for d in queue_plan(resource)),
        )

    # -- internals -------------------------------------------------------------------------

    def _manager(self, resource: TaskQueue) -> QueueManager:
        """The queue manager of the resource; WorkloadError when its Secret is unreadable."""
        sqs = resource.spec.sqs
        credentials: Mapping[str, str] = {}
        if sqs.credentials_secret:
            credentials = self._workloads.read_secret(resource.namespace, sqs.credentials_secret)
        client = self._clients.get(
            region=sqs.region or "us-east-1", endpoint=sqs.endpoint, credentials=credentials
        )
        return QueueManager(
            client,
            owner=resource.key,
            owner_uid=resource.metadata.uid,
            adopt=resource.spec.adopt_existing_queues,
        )

    def _peers(self, peers: Iterable[Mapping[str, Any]]) -> list[TaskQueue]:
        resolved = []
        for body in peers:
            try:
                resolved.append(self.resolve(body))
            except InvalidDocument:
                continue  # an invalid peer claims nothing
        return resolved

    @staticmethod
    def _queue_status(resource: TaskQueue, state: QueueState) -> dict[str, Any]:
        entry = {"name": state.queue, "url": state.url, "arn": state.arn}
        if state.dead_letter_url:
            entry["deadLetterUrl"] = state.dead_letter_url
        return entry


def _failed(reason: str, message: str, *, generation: int | None) -> list[dict[str, Any]]:
    """Conditions of a valid resource that cannot be put in place."""
    return [
        conditions.condition(
            conditions.READY, False, reason=reason, message=message, generation=generation
        ),
        conditions.condition(conditions.INVALID, False, reason="Valid", generation=generation),
        conditions.condition(
            conditions.DEGRADED, True, reason=reason, message=message, generation=generation
        ),
    ]


def _healthy(message: str, *, generation: int | None) -> list[dict[str, Any]]:
    return [
        conditions.condition(
            conditions.READY, True, reason="Reconciled", message=message, generation=generation
        ),
        conditions.condition(conditions.INVALID, False, reason="Valid", generation=generation),
        conditions.condition(conditions.DEGRADED, False, reason="Healthy", generation=generation),
    ]


def _reason(current: Iterable[Mapping[str, Any]], kind: str) -> str | None:
    found = conditions.find(current, kind)
    return None if found is None else str(found.get("reason"))
