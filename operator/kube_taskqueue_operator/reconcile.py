"""Reconcile one TaskQueue: validate, ensure its queues, apply its workloads, report status.

Level-based and idempotent: the same function runs on create, update, resume and the drift
timer, so whatever was changed or deleted out of band is put back. An invalid resource gets
condition Invalid and nothing is created or changed for it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kube_taskqueue_operator import conditions, failpoints
from kube_taskqueue_operator.failpoints import Failpoints
from kube_taskqueue_operator.handover import Handover, handovers
from kube_taskqueue_operator.policies import PolicyIndex
from kube_taskqueue_operator.queues import (
    QueueError,
    QueueManager,
    QueueMissing,
    QueueState,
    SqsClients,
    classify,
)
from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.defaults import SqsDefaults, with_defaults
from kube_taskqueue_operator.resource.models import TaskQueue
from kube_taskqueue_operator.resource.render import queue_plan, render
from kube_taskqueue_operator.resource.validation import InvalidDocument, parse, validate_against
from kube_taskqueue_operator.workloads import WorkloadError, Workloads

log = logging.getLogger(__name__)

#: Reason of the conditions the status timer sets when a queue was deleted out of band.
QUEUE_MISSING = "QueueMissing"
#: Reason of the conditions of a TaskQueue its namespace's policy refuses.
POLICY_DENIED = "PolicyDenied"
#: Annotation that lets a TaskQueue with deletionPolicy Delete go although its queues could
#: not be deleted (they are left behind, named in an event).
ABANDON_QUEUES_ANNOTATION = "taskqueue.dev/abandon-queues"
#: Seconds between checks of a processor's rollout while another waits to hand it a queue.
HANDOVER_RECHECK_SECONDS = 10
#: Attempts to delete the queues (deletionPolicy Delete) before the finalizer lets go.
DELETE_ATTEMPTS = 5

__all__ = ["ABANDON_QUEUES_ANNOTATION", "Outcome", "Reconciler", "SqsClients"]

#: (type, reason, message) of a Kubernetes event; type is Normal or Warning.
Event = tuple[str, str, str]
Emit = Callable[[str, str, str], None]


#: Seconds between checks of a settled TaskQueue's queue attributes by the drift timer.
QUEUE_DRIFT_SECONDS = 900.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Settled:
    generation: int
    checked: float
    """time.monotonic() of the last check of the queues in SQS."""
    states: list[QueueState]


@dataclasses.dataclass(kw_only=True)
class Outcome:
    status: dict[str, Any]
    retry_after: float | None = None
    """Seconds until a temporary problem should be retried; None when settled."""
    invalid: bool = False


class Reconciler:
    def __init__(
        self,
        *,
        workloads: Workloads,
        clients: SqsClients,
        defaults: SqsDefaults,
        failpoints: Failpoints | None = None,
        delete_attempts: int = DELETE_ATTEMPTS,
        policies: PolicyIndex | None = None,
        queue_drift_interval: float = QUEUE_DRIFT_SECONDS,
    ) -> None:
        self._workloads = workloads
        self._clients = clients
        self._defaults = defaults
        self.policies = policies or PolicyIndex(default_endpoint=defaults.endpoint, loaded=True)
        """The cluster's TaskQueuePolicies (the built-in default policy when none is given)."""
        self.failpoints = failpoints or Failpoints()
        self._delete_attempts = delete_attempts
        self._failed_deletes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._object_locks: dict[str, threading.Lock] = {}
        self._generations: dict[str, int] = {}
        self._queue_drift_interval = queue_drift_interval
        self._settled: dict[str, _Settled] = {}
        """Per TaskQueue uid: the last reconcile that put everything in place."""

    def resolve(self, body: Mapping[str, Any]) -> TaskQueue:
        """Parse a TaskQueue body and fill in the operator's defaults."""
        return with_defaults(parse(body), self._defaults)

    def permitted(self, body: Mapping[str, Any]) -> bool:
        """Whether the policies of the body's namespace allow it now (an unparseable body is
        not refused here: it claims nothing anyway)."""
        try:
            resource = self.resolve(body)
        except InvalidDocument:
            return True
        return not self.policies.tenancy().problems(resource)

    def reconcile(
        self,
        body: Mapping[str, Any],
        *,
        peers: Iterable[Mapping[str, Any]],
        emit: Emit,
        routine: bool = False,
    ) -> Outcome:
        """One reconcile at a time per TaskQueue (kopf runs the drift timer and the change
        handlers of one object concurrently), and never one of an older generation than
        already reconciled: a timer holding the body from before an edit would put the old
        spec back. A skipped reconcile returns an empty status (nothing to write)."""
        metadata = body.get("metadata", {})
        key = str(metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}")
        generation = metadata.get("generation")
        with self._lock:
            lock = self._object_locks.setdefault(key, threading.Lock())
        with lock:
            seen = self._generations.get(key, 0)
            if isinstance(generation, int) and generation < seen:
                log.debug("skipped a reconcile of generation %s (%s done)", generation, seen)
                return Outcome(status={})
            outcome = self._reconcile(body, peers=peers, emit=emit, routine=routine)
            if isinstance(generation, int):
                self._generations[key] = max(seen, generation)
            return outcome

    def _reconcile(
        self,
        body: Mapping[str, Any],
        *,
        peers: Iterable[Mapping[str, Any]],
        emit: Emit,
        routine: bool,
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

        denied = self.policies.tenancy().problems(resource)
        if denied:
            # Nothing is created, changed or deleted: a policy tightened under an existing
            # TaskQueue leaves its queues and pods as they are until it is fixed.
            message = "; ".join(denied)
            emit("Warning", POLICY_DENIED, message)
            return Outcome(
                invalid=True,
                status={
                    "observedGeneration": generation,
                    "conditions": conditions.merge(
                        current, _denied(message, generation=generation)
                    ),
                },
            )

        base = {
            "observedGeneration": generation,
            "queueCount": len(resource.spec.queues),
            "processorCount": len(resource.spec.processors),
        }
        uid = str(resource.metadata.uid or resource.key)
        settled = self._settled.get(uid) if routine else None
        # A drift check of a settled spec: the Kubernetes objects are compared (and repaired),
        # the queues' attributes only every queue_drift_interval (each check costs several SQS
        # calls per queue), and nothing can be left to prune (that follows a spec change).
        fresh = settled is None or (
            settled.generation != generation
            or time.monotonic() - settled.checked >= self._queue_drift_interval
        )
        self._settled.pop(uid, None)
        try:
            states = self.ensure_queues(resource) if fresh else list(settled.states)  # type: ignore[union-attr]
            checked = time.monotonic() if fresh else settled.checked  # type: ignore[union-attr]
            self.failpoints.hit(failpoints.AFTER_QUEUES)
            objects = render(resource, queue_urls={state.queue: state.url for state in states})
            changes = [change for state in states for change in state.changes]
            applied, waiting = self._apply(resource, objects)
            changes += applied
            if fresh or waiting:
                changes += self._workloads.prune(
                    resource, objects, spare={move.losing for move in waiting}
                )
            leaving, retired = self._retire(resource, states, body.get("status") or {})
            changes += retired
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
        if waiting:
            message = "handing over queues: " + "; ".join(
                f"{move.describe()} ({reason})" for move, reason in waiting.items()
            )
            return Outcome(
                retry_after=HANDOVER_RECHECK_SECONDS,
                status={
                    **base,
                    "queues": self._queue_statuses(resource, states, body.get("status") or {}),
                    "leavingQueues": leaving,
                    "processors": processors,
                    "conditions": conditions.merge(
                        current, _handing_over(message, generation=generation)
                    ),
                },
            )
        if isinstance(generation, int):
            self._settled[uid] = _Settled(generation=generation, checked=checked, states=states)
        message = f"{len(states)} queues, {len(processors)} processors in place"
        if leaving:
            message += (
                f"; {', '.join(str(e['url']).rsplit('/', 1)[-1] for e in leaving)} left the spec "
                "and will be "
                + ("deleted" if resource.spec.deletion_policy == "Delete" else "released")
                + " once the processors are rolled out"
            )
        return Outcome(
            status={
                **base,
                "queues": self._queue_statuses(resource, states, body.get("status") or {}),
                "leavingQueues": leaving,
                "processors": processors,
                "conditions": conditions.merge(current, _healthy(message, generation=generation)),
            }
        )

    def _apply(
        self, resource: TaskQueue, objects: list[dict[str, Any]]
    ) -> tuple[list[str], dict[Handover, str]]:
        """Apply the objects, those of a processor giving up a queue only once the processor
        taking it over is rolled out. Returns what changed and the handovers still waiting,
        each with why."""
        live = self._workloads.deployments(resource)
        known = {("Deployment", str(obj["metadata"]["name"])): obj for obj in live}
        moves = handovers([obj for obj in objects if obj["kind"] == "Deployment"], live)
        losing = {move.losing for move in moves}
        changes = self._workloads.apply(
            resource,
            [obj for obj in objects if _processor_of(obj) not in losing],
            after_first=lambda: self.failpoints.hit(failpoints.AFTER_CONFIGMAP),
            known=known,
        )
        if not moves:
            return changes, {}
        waiting: dict[Handover, str] = {}
        for move in moves:
            pending = self._workloads.rollout_pending(
                resource, naming.workload_name(resource, move.gaining), polling=move.queues
            )
            if pending:
                waiting[move] = pending
        blocked = {move.losing for move in waiting}
        changes += self._workloads.apply(
            resource,
            [obj for obj in objects if _processor_of(obj) in losing - blocked],
            known=known,
        )
        return changes, waiting

    def _retire(
        self, resource: TaskQueue, states: list[QueueState], status: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Queues that left the spec (by URL: a renamed, re-prefixed or dropped dead-letter
        queue leaves too): retired once no processor of the new spec can still be polling
        them, i.e. every processor Deployment is rolled out. Returns the queues still
        leaving (for status.leavingQueues) and what was done."""
        current = {url for state in states for url in (state.url, state.dead_letter_url) if url}
        leaving: dict[str, dict[str, Any]] = {}
        for entry in [*status.get("leavingQueues", []), *status.get("queues", [])]:
            for url in (entry.get("url"), entry.get("deadLetterUrl")):
                if url and url not in current and url not in leaving:
                    leaving[url] = {"name": str(entry.get("name")), "url": url}
        if not leaving:
            return [], []
        if self._workloads.not_rolled_out(resource):
            return list(leaving.values()), []
        manager = self._manager(resource)
        delete = resource.spec.deletion_policy == "Delete"
        done = [manager.retire(url, delete=delete) for url in leaving]
        return [], [change for change in done if change]

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
        current = status.get("conditions", [])
        generation = status.get("observedGeneration")
        denied = self.policies.tenancy().problems(resource)
        if denied:
            # No SQS call: the endpoint or credentials may be what the policy now refuses.
            return {
                "conditions": conditions.merge(
                    current, _denied("; ".join(denied), generation=generation)
                )
            }
        queues, missing = self._depths(resource, status.get("queues", []))
        result: dict[str, Any] = {
            "queues": queues,
            "processors": self._workloads.processor_replicas(resource),
        }
        if missing:
            self._settled.pop(str(resource.metadata.uid or resource.key), None)
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
                depth = manager.depth(entry["url"])
                if entry.get("deadLetterUrl"):
                    dead = manager.depth(entry["deadLetterUrl"])
                    refreshed["approximateDeadLetters"] = dead.visible + dead.in_flight
            except QueueMissing:
                name = str(entry["url"]).rsplit("/", 1)[-1]
                missing.append(f"SQS queue {name!r} of queue {entry.get('name')!r} is gone")
                refreshed.update(approximateMessages=None, approximateInFlight=None)
            except QueueError as error:
                log.warning("depth of queue %s not refreshed: %s", entry.get("name"), error)
            else:
                refreshed.update(
                    approximateMessages=depth.visible,
                    approximateInFlight=depth.in_flight,
                    approximateDelayed=depth.delayed,
                )
        return queues, missing

    def finalize(self, body: Mapping[str, Any], *, emit: Emit) -> None:
        """Deletion: retain (untag) or delete the queues, as the resource's policy says.

        Retain never blocks the deletion: untagging is best effort (each SQS call under the
        clients' deadline), and what could not be untagged is named in a Warning event.
        Delete raises QueueError or WorkloadError while SQS or the credentials Secret cannot
        be reached (kopf retries), up to `delete_attempts` times; then, or at once with the
        annotation taskqueue.dev/abandon-queues: "true", it lets go and names the queues left
        behind in a Warning event."""
        try:
            resource = self.resolve(body)
        except InvalidDocument:
            return  # never valid, so nothing was created
        policy = resource.spec.deletion_policy
        plan = queue_plan(resource)
        names = ", ".join(n for d in plan for n in _physical(d))
        uid = resource.metadata.uid or resource.key
        denied = self.policies.tenancy().problems(resource)
        if denied:
            # Neither released nor deleted: the namespace's policy refuses this TaskQueue, so
            # the operator makes no SQS call for it (the queues may not even be its own).
            emit(
                "Warning",
                POLICY_DENIED,
                f"queues left in place, neither released nor deleted: {names}; "
                + "; ".join(denied),
            )
            return
        annotations = body.get("metadata", {}).get("annotations") or {}
        if policy == "Delete" and str(annotations.get(ABANDON_QUEUES_ANNOTATION)).lower() == "true":
            emit(
                "Warning",
                "QueuesAbandoned",
                f"{ABANDON_QUEUES_ANNOTATION} is set: queues left behind, not deleted: {names}",
            )
            return
        try:
            manager = self._manager(resource)
            for definition in plan:
                try:
                    if policy == "Delete":
                        manager.delete(definition)
                    else:
                        manager.release(definition)
                except Exception as error:
                    raise classify(error, queue=definition.name) from error
        except (QueueError, WorkloadError) as error:
            if policy != "Delete":
                emit(
                    "Warning",
                    "QueuesNotReleased",
                    f"deletionPolicy Retain: queues kept but still tagged as owned ({error}): "
                    f"{names}",
                )
                return
            with self._lock:
                attempts = self._failed_deletes[uid] = self._failed_deletes.get(uid, 0) + 1
            if attempts >= self._delete_attempts:
                with self._lock:
                    self._failed_deletes.pop(uid, None)
                emit(
                    "Warning",
                    "QueuesLeftBehind",
                    f"deletionPolicy Delete: gave up after {attempts} attempts ({error}); "
                    f"queues left behind: {names}",
                )
                return
            message = (
                f"deletion blocked (attempt {attempts} of {self._delete_attempts}): {error}; "
                f'annotate {ABANDON_QUEUES_ANNOTATION}="true" to leave the queues behind'
            )
            self._report(body, error.reason, message)
            raise
        with self._lock:
            self._failed_deletes.pop(uid, None)
            self._object_locks.pop(uid, None)
            self._generations.pop(uid, None)
        emit(
            "Normal",
            "QueuesDeleted" if policy == "Delete" else "QueuesRetained",
            f"deletionPolicy {policy}: {names}",
        )

    def _report(self, body: Mapping[str, Any], reason: str, message: str) -> None:
        """Best effort: conditions Ready False / Degraded with the reason (a deletion's)."""
        metadata = body.get("metadata", {})
        generation = metadata.get("generation")
        current = body.get("status", {}).get("conditions", [])
        try:
            self._workloads.patch_status(
                namespace=metadata.get("namespace") or "default",
                name=metadata.get("name") or "",
                status={
                    "observedGeneration": generation,
                    "conditions": conditions.merge(
                        current, _failed(reason, message, generation=generation)
                    ),
                },
            )
        except WorkloadError as error:
            log.warning("status of %s not written: %s", metadata.get("name"), error)

    # -- internals -------------------------------------------------------------------------

    def _manager(self, resource: TaskQueue) -> QueueManager:
        """The queue manager of the resource; WorkloadError when its Secret is unreadable.

        The last guard before any SQS request: no client is made for an endpoint the
        namespace's policy does not allow, whatever the caller checked."""
        sqs = resource.spec.sqs
        if not self.policies.tenancy().allows_endpoint(resource):
            raise QueueError(
                f"the SQS endpoint {sqs.endpoint or 'AWS'!r} is not allowed by the policy of "
                f"namespace {resource.namespace!r}; no request was sent",
                reason=POLICY_DENIED,
                temporary=False,
            )
        credentials: Mapping[str, str] = {}
        if sqs.credentials_secret:
            credentials = self._workloads.read_secret(resource.namespace, sqs.credentials_secret)
        client = self._clients.get(
            region=sqs.region or "us-east-1",
            endpoint=sqs.endpoint,
            credentials=credentials,
            source=f"{resource.namespace}/{sqs.credentials_secret or ''}",
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

    def _queue_statuses(
        self, resource: TaskQueue, states: list[QueueState], status: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The queues' entries, with the depths the status timer last read for the same URL
        kept (so a drift check that changes nothing writes nothing)."""
        known = {str(e.get("url")): e for e in status.get("queues") or [] if e.get("url")}
        entries = []
        for state in states:
            entry = self._queue_status(resource, state)
            previous = known.get(state.url, {})
            entry.update({k: v for k, v in previous.items() if k.startswith("approximate")})
            entries.append(entry)
        return entries

    @staticmethod
    def _queue_status(resource: TaskQueue, state: QueueState) -> dict[str, Any]:
        entry = {"name": state.queue, "url": state.url, "arn": state.arn}
        tasks = {task.name for task in resource.spec.tasks if task.queue == state.queue}
        polling = [p.name for p in resource.spec.processors if tasks & set(p.tasks)]
        if len(polling) == 1:  # the split rule: a queue has one processor (none: unpolled)
            entry["processor"] = polling[0]
        if state.dead_letter_url:
            entry["deadLetterUrl"] = state.dead_letter_url
        return entry


def _processor_of(obj: Mapping[str, Any]) -> str | None:
    labels = obj.get("metadata", {}).get("labels") or {}
    return labels.get(naming.LABEL_PROCESSOR)


def _physical(definition: Any) -> list[str]:
    names = [definition.name]
    if definition.dead_letter is not None:
        names.append(definition.dead_letter.name)
    return names


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


def _denied(message: str, *, generation: int | None) -> list[dict[str, Any]]:
    """Conditions of a TaskQueue its namespace's policy refuses: not Ready, and refused as an
    invalid one is, for a reason of its own (the platform's policy, not the spec's shape)."""
    return [
        conditions.condition(
            conditions.READY, False, reason=POLICY_DENIED, message=message, generation=generation
        ),
        conditions.condition(
            conditions.INVALID, True, reason=POLICY_DENIED, message=message, generation=generation
        ),
    ]


def _handing_over(message: str, *, generation: int | None) -> list[dict[str, Any]]:
    """Conditions while a queue moves between processors: not Ready (the edit is not in
    place yet), not Degraded (nothing failed; the queue is polled meanwhile)."""
    return [
        conditions.condition(
            conditions.READY, False, reason="HandingOver", message=message, generation=generation
        ),
        conditions.condition(conditions.INVALID, False, reason="Valid", generation=generation),
        conditions.condition(conditions.DEGRADED, False, reason="Healthy", generation=generation),
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
