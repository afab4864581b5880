"""The kopf handlers: thin wrappers that hand each event to the reconciler.

They are registered by `register()` into a registry of their own, with the intervals of the
operator's settings, so nothing is read from the environment at import time.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kube_taskqueue_operator import failpoints
from kube_taskqueue_operator.queues import QueueError
from kube_taskqueue_operator.reconcile import Emit, Reconciler
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
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 8
    if operator.peering:
        settings.peering.name = operator.peering
        settings.peering.priority = operator.priority
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
) -> None:
    """Register every handler of the operator into `registry`; the admission webhook when
    `webhook_tls` is given."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In a pod: its service account; elsewhere: KUBECONFIG / ~/.kube/config.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, operator, webhook_tls)

    @kopf.index(*RESOURCE, registry=registry, id="taskqueues")
    def taskqueues(body: kopf.Body, **_: Any) -> dict[str, Any]:
        """Every TaskQueue's spec by namespace/name, for the cross-resource queue rule."""
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        return {key: {"metadata": dict(body.metadata), "spec": dict(body.spec)}}

    if webhook_tls is not None:

        @kopf.on.validate(
            *RESOURCE, id="taskqueue", registry=registry, operations=["CREATE", "UPDATE"]
        )
        def admit(body: kopf.Body, **kwargs: Any) -> None:
            taskqueues: kopf.Index[str, Any] = kwargs["taskqueues"]
            document = {"metadata": dict(body.metadata), "spec": dict(body.spec)}
            try:
                resource = reconciler.resolve(document)
                others = [
                    reconciler.resolve(p) for p in _peers(taskqueues) if _valid(reconciler, p)
                ]
                problems = [p.message for p in validate_against(resource, others)]
            except InvalidDocument as error:
                problems = [p.message for p in error.problems]
            if problems:
                raise kopf.AdmissionError("; ".join(problems), code=422)

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile")
    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile")
    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile")
    def reconcile(body: kopf.Body, **kwargs: Any) -> None:
        _reconcile(reconciler, workloads, body, kwargs["taskqueues"])

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        id="drift",
        interval=operator.drift_interval,
        initial_delay=operator.drift_interval,
        idle=operator.drift_interval / 2,
    )
    def drift(body: kopf.Body, **kwargs: Any) -> None:
        _reconcile(reconciler, workloads, body, kwargs["taskqueues"])

    @kopf.timer(
        *RESOURCE,
        registry=registry,
        id="status",
        interval=operator.status_interval,
        initial_delay=operator.status_interval,
    )
    def refresh_status(body: kopf.Body, **_: Any) -> None:
        _refresh(reconciler, workloads, body)

    @kopf.on.delete(*RESOURCE, registry=registry, id="finalize")
    def finalize(body: kopf.Body, **_: Any) -> None:
        try:
            reconciler.finalize(_document(body), emit=_emitter(body))
        except (QueueError, WorkloadError) as error:
            _emitter(body)("Warning", error.reason, f"queues not released yet: {error}")
            raise kopf.TemporaryError(str(error), delay=error.delay) from None


def _emitter(body: kopf.Body) -> Emit:
    def emit(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message[:1024])

    return emit


def _peers(index: kopf.Index[str, Any]) -> list[dict[str, Any]]:
    return [value for key in index for value in index[key]]


def _reconcile(
    reconciler: Reconciler, workloads: Workloads, body: kopf.Body, index: kopf.Index[str, Any]
) -> None:
    outcome = reconciler.reconcile(_document(body), peers=_peers(index), emit=_emitter(body))
    reconciler.failpoints.hit(failpoints.BEFORE_STATUS)
    try:
        workloads.patch_status(
            namespace=body.metadata.namespace or "default",
            name=body.metadata.name or "",
            status=outcome.status,
        )
    except WorkloadError as error:
        raise kopf.TemporaryError(str(error), delay=error.delay) from None
    if outcome.retry_after is not None:
        # kopf logs a temporary error as one line (no traceback) and retries after the delay.
        raise kopf.TemporaryError(
            outcome.status["conditions"][0]["message"], delay=outcome.retry_after
        )


def _refresh(reconciler: Reconciler, workloads: Workloads, body: kopf.Body) -> None:
    """The status timer: depths, replicas, and a queue deleted behind the operator's back."""
    if not body.get("status", {}).get("queues"):
        return
    try:
        workloads.patch_status(
            namespace=body.metadata.namespace or "default",
            name=body.metadata.name or "",
            status=reconciler.refresh(_document(body)),
        )
    except InvalidDocument:
        # A body this operator cannot parse (say, a field of a newer CRD): the reconcile
        # reports it as condition Invalid; a traceback per tick would say nothing more.
        return
    except WorkloadError as error:
        log.warning("status of %s not refreshed: %s", body.metadata.name, error)


def _document(body: kopf.Body) -> dict[str, Any]:
    return {
        "metadata": dict(body.metadata),
        "spec": dict(body.spec),
        "status": dict(body.get("status", {})),
    }


def _valid(reconciler: Reconciler, body: dict[str, Any]) -> bool:
    try:
        reconciler.resolve(body)
    except InvalidDocument:
        return False
    return True
