"""The kopf handlers: thin wrappers that hand each event to the reconciler.

They are registered by `register()` into a registry of their own, with the intervals of the
operator's settings, so nothing is read from the environment at import time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from kube_taskqueue_operator import failpoints
from kube_taskqueue_operator.claims import ClaimIndex, rank
from kube_taskqueue_operator.metrics import OperatorMetrics
from kube_taskqueue_operator.queues import QueueError
from kube_taskqueue_operator.reconcile import Emit, Reconciler
from kube_taskqueue_operator.resource.identity import identities
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION
from kube_taskqueue_operator.resource.validation import InvalidDocument, validate_against
from kube_taskqueue_operator.settings import OperatorSettings
from kube_taskqueue_operator.webhookserver import WebhookTls, server
from kube_taskqueue_operator.workloads import WorkloadError, Workloads

log = logging.getLogger(__name__)

RESOURCE = (GROUP, VERSION, PLURAL)
FINALIZER = "taskqueue.dev/finalizer"
ANNOTATION_PREFIX = "taskqueue.dev"
WEBHOOK_CONFIGURATION = "taskqueue.dev"
CONSISTENCY_TIMEOUT_SECONDS = 60.0


def configure_kopf(
    settings: kopf.OperatorSettings, operator: OperatorSettings, tls: WebhookTls | None
) -> None:
    """kopf's own settings: our finalizer and annotation names, webhook, timeouts."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own events say what was done
    # How long kopf waits for the watch event of its own patch (the handled-configuration
    # annotation) before it takes a later event's body as current. kopf's 5 s is short when
    # hundreds of TaskQueues are created at once: the reconcile's own status patch arrived
    # first, without the annotation, and kopf ran the creation handler a second time (768
    # of 1,000 TaskQueues in the scale benchmark, each a full queue check).
    settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT_SECONDS
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.execution.max_workers = operator.workers
    if operator.peering:
        settings.peering.name = operator.peering
        settings.peering.priority = operator.priority or 0  # main() draws one when unset
        settings.peering.lifetime = operator.peering_lifetime
        settings.peering.mandatory = True
    else:
        settings.peering.standalone = True
    if tls is not None:
        settings.admission.server = server(operator, tls)
        if operator.webhook_managed:
            settings.admission.managed = WEBHOOK_CONFIGURATION


def register(
    registry: kopf.OperatorRegistry,
    *,
    operator: OperatorSettings,
    reconciler: Reconciler,
    workloads: Workloads,
    webhook_tls: WebhookTls | None,
    claims: ClaimIndex,
    started: threading.Event | None = None,
    metrics: OperatorMetrics | None = None,
) -> None:
    """Register every handler of the operator into `registry`; the admission webhook when
    `webhook_tls` is given. `claims` is the queue-claim index (kept by `ClaimWatcher`);
    `started` is set when the start-up handler is done (kopf then serves and watches)."""

    limiter = WarningLimiter(interval=operator.warning_repeat_interval)
    gauges = metrics or OperatorMetrics()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: its service account; elsewhere: KUBECONFIG / ~/.kube/config.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, operator, webhook_tls)
        # kopf starts its webhook server (and, when managed, registers it) and its watches
        # only after the start-up handlers: so this replica admits and reconciles only
        # with every TaskQueue's claims known. `/readyz` says the same meanwhile.
        while not (claims.complete and reconciler.policies.complete):
            await asyncio.sleep(0.1)
        if started is not None:
            started.set()

    if webhook_tls is not None:

        @kopf.on.validate(
            *RESOURCE, id="taskqueue", registry=registry, operations=["CREATE", "UPDATE"]
        )
        async def admit(body: kopf.Body, **kwargs: Any) -> None:
            # Async on purpose: it runs on the event loop, never in kopf's executor, whose
            # threads reconciles may hold while SQS hangs. It does no I/O.
            problems = admission_problems(
                reconciler,
                claims,
                body=body,
                old=kwargs.get("old"),
                operation=str(kwargs.get("operation") or ""),
            )
            if problems:
                raise kopf.AdmissionError("; ".join(problems), code=422)

    # A shard reconciles only the TaskQueues its selector matches; the webhook above admits
    # every TaskQueue (any shard's pod may get the review, and all know every claim).
    shard = operator.shard_labels

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile", labels=shard)
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile", labels=shard)
    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile", labels=shard)
    def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        _reconcile(reconciler, claims, body, patch, limiter=limiter, metrics=gauges)

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        id="drift",
        labels=shard,
        interval=operator.drift_interval,
        initial_delay=operator.drift_interval,
        idle=operator.drift_interval / 2,
    )
    def drift(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        _reconcile(
            reconciler,
            claims,
            body,
            patch,
            limiter=limiter,
            metrics=gauges,
            routine=True,
        )

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        id="status",
        labels=shard,
        interval=operator.status_interval,
        initial_delay=operator.status_interval,
    )
    def refresh_status(body: kopf.Body, **_: Any) -> None:
        _refresh(reconciler, workloads, body, metrics=gauges)

    @kopf.on.delete(*RESOURCE, registry=registry, id="finalize", labels=shard)
    def finalize(body: kopf.Body, **_: Any) -> None:
        try:
            reconciler.finalize(_document(body), emit=_emitter(body))
        except (QueueError, WorkloadError) as error:
            _emitter(body)("Warning", error.reason, f"queues not released yet: {error}")
            raise kopf.TemporaryError(str(error), delay=error.delay) from None
        gauges.forget(body.metadata.namespace or "default", body.metadata.name or "")


class WarningLimiter:
    """Posts a Warning event again only after `interval` seconds when nothing about it
    changed (same object, reason and message): retries while Degraded would otherwise post
    one per attempt. Normal events (what a reconcile changed) always pass."""

    #: Entries kept at most; the oldest go first (one per object and problem is plenty).
    MAX_ENTRIES = 10_000

    def __init__(self, *, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._posted: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def allow(self, *, uid: str, kind: str, reason: str, message: str) -> bool:
        if kind != "Warning" or self._interval <= 0:
            return True
        key = (uid, reason, message)
        now = self._clock()
        with self._lock:
            last = self._posted.get(key)
            if last is not None and now - last < self._interval:
                return False
            self._posted.pop(key, None)
            self._posted[key] = now
            while len(self._posted) > self.MAX_ENTRIES:
                del self._posted[next(iter(self._posted))]
        return True

    def forget(self, uid: str) -> None:
        """The object is healthy again: its next problem is a new episode, posted at once."""
        with self._lock:
            for key in [k for k in self._posted if k[0] == uid]:
                del self._posted[key]


def _emitter(body: kopf.Body, limiter: WarningLimiter | None = None) -> Emit:
    def emit(kind: str, reason: str, message: str) -> None:
        message = message[:1024]
        uid = str(body.metadata.uid or f"{body.metadata.namespace}/{body.metadata.name}")
        if limiter is None or limiter.allow(uid=uid, kind=kind, reason=reason, message=message):
            kopf.event(body, type=kind, reason=reason, message=message)

    return emit


def admission_problems(
    reconciler: Reconciler,
    claims: ClaimIndex,
    *,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    operation: str,
) -> list[str]:
    """Why the API server should refuse this CREATE or UPDATE; empty to admit it.

    An object being deleted, and an update that leaves the spec as it is (labels, kopf's
    finalizer and annotations, its removal at deletion), are always admitted: refusing them
    would only keep a resource from being labelled or deleted. Otherwise the resource must
    be valid on its own and claim no queue a senior TaskQueue holds (`claims`): on CREATE
    every stored claimant is senior; on UPDATE only those created before it, so the owner
    of a queue can always be edited."""
    metadata = body.get("metadata", {})
    if metadata.get("deletionTimestamp"):
        return []
    if operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec"):
        return []
    if not claims.complete:
        return [
            "the operator is still loading the TaskQueues of the cluster, so it cannot yet "
            "tell whether this one claims another's SQS queue; retry in a few seconds"
        ]
    if not reconciler.policies.complete:
        return [
            "the operator is still loading the TaskQueuePolicies of the cluster; retry in a "
            "few seconds"
        ]
    document = {"metadata": dict(metadata), "spec": dict(body.get("spec", {}))}
    try:
        resource = reconciler.resolve(document)
    except InvalidDocument as error:
        return [p.message for p in error.problems]
    problems = [p.message for p in validate_against(resource, [])]
    problems += reconciler.policies.tenancy().problems(resource)
    key = f"{metadata.get('namespace') or 'default'}/{metadata.get('name')}"
    own_rank = rank(metadata) if operation == "UPDATE" else None
    problems += [c.message for c in claims.clashes(identities(resource), key=key, rank=own_rank)]
    return problems


#: Seconds a reconcile waits for the claim index's first list before it is retried.
INDEX_WAIT_SECONDS = 10.0


def _reconcile(
    reconciler: Reconciler,
    claims: ClaimIndex,
    body: kopf.Body,
    patch: kopf.Patch,
    *,
    limiter: WarningLimiter,
    metrics: OperatorMetrics,
    routine: bool = False,
) -> None:
    if not claims.wait_complete(INDEX_WAIT_SECONDS) or not claims.wait_seen(
        _document(body), INDEX_WAIT_SECONDS
    ):
        raise kopf.TemporaryError("the TaskQueue claim index has not caught up yet", delay=2)
    # Only the senior claimants of its queues: a junior clash never invalidates the owner;
    # the junior sees the owner here and turns Invalid.
    peers = [dict(peer) for peer in claims.senior_peers(_document(body))]
    outcome = reconciler.reconcile(
        _document(body), peers=peers, emit=_emitter(body, limiter), routine=routine
    )
    if not outcome.status:
        return  # an older generation than already reconciled (the drift timer racing an edit)
    reconciler.failpoints.hit(failpoints.BEFORE_STATUS)
    if not _unchanged(body.get("status", {}), outcome.status):
        # Written by kopf with its own handled-configuration annotation, after the handler
        # (also when it raises TemporaryError below): a status patch of our own would reach the
        # watch first, without that annotation, and kopf would take the TaskQueue for one not
        # yet handled and run the creation handler again.
        patch.setdefault("status", {}).update(outcome.status)
    metrics.observe(body.metadata.namespace or "default", body.metadata.name or "", outcome.status)
    if outcome.retry_after is None and not outcome.invalid:
        limiter.forget(str(body.metadata.uid or f"{body.metadata.namespace}/{body.metadata.name}"))
    if outcome.retry_after is not None:
        # kopf logs a temporary error as one line (no traceback) and retries after the delay.
        raise kopf.TemporaryError(
            outcome.status["conditions"][0]["message"], delay=outcome.retry_after
        )


def _refresh(
    reconciler: Reconciler, workloads: Workloads, body: kopf.Body, *, metrics: OperatorMetrics
) -> None:
    """The status timer: depths, replicas, and a queue deleted behind the operator's back."""
    if not body.get("status", {}).get("queues"):
        return
    namespace, name = body.metadata.namespace or "default", body.metadata.name or ""
    try:
        status = reconciler.refresh(_document(body))
        # Written only when something changed: an idle TaskQueue's refresh then costs no
        # write, and no watch event for kopf and the claim index to process.
        if not _unchanged(body.get("status", {}), status):
            workloads.patch_status(namespace=namespace, name=name, status=status)
        metrics.observe(namespace, name, status)
    except InvalidDocument:
        # A body this operator cannot parse (say, a field of a newer CRD): the reconcile
        # reports it as condition Invalid; a traceback per tick would say nothing more.
        return
    except WorkloadError as error:
        log.warning("status of %s not refreshed: %s", body.metadata.name, error)


def _unchanged(current: Mapping[str, Any], update: Mapping[str, Any]) -> bool:
    """Whether merge-patching `update` into `current` would change nothing."""
    return all(current.get(key) == value for key, value in update.items())


def _document(body: kopf.Body) -> dict[str, Any]:
    return {
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.get("status", {})),
    }
