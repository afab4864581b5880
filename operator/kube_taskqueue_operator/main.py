"""Entry point of `kube-taskqueue operator`: read the settings, build the adapters, run kopf."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import kopf
import kubernetes
import pydantic

from kube_taskqueue_operator.failpoints import Failpoints
from kube_taskqueue_operator.handlers import register
from kube_taskqueue_operator.reconcile import Reconciler, SqsClients
from kube_taskqueue_operator.settings import OperatorSettings, describe, from_environment
from kube_taskqueue_operator.webhookcerts import CertificateError
from kube_taskqueue_operator.webhookserver import WebhookTls, prepare
from kube_taskqueue_operator.workloads import Workloads

log = logging.getLogger(__name__)


def _client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kube-taskqueue operator",
        description="Run the TaskQueue operator. Settings come from TASKQUEUE_* variables; "
        "these flags override them.",
    )
    parser.add_argument("--namespace", action="append", help="watch only this namespace (repeat)")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args(list(argv))
    try:
        settings = from_environment()
    except pydantic.ValidationError as error:
        for problem in describe(error):
            print(f"kube-taskqueue operator: {problem}", file=sys.stderr)
        return 2
    if options.namespace:
        settings = settings.model_copy(update={"namespaces": options.namespace})
    return serve(settings, verbose=options.verbose)


def serve(settings: OperatorSettings, *, verbose: bool = False) -> int:
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    api = _client()
    try:
        tls = prepare(settings, api) if settings.webhook_enabled else None
    except CertificateError as error:
        log.error("cannot serve the admission webhook: %s", error)
        return 1
    workloads = Workloads(api, field_manager=settings.field_manager)
    reconciler = Reconciler(
        workloads=workloads,
        clients=SqsClients(call_timeout=settings.sqs_call_timeout),
        defaults=settings.sqs_defaults,
        failpoints=Failpoints(settings.failpoint),
    )
    registry = kopf.OperatorRegistry()
    register(
        registry, operator=settings, reconciler=reconciler, workloads=workloads, webhook_tls=tls
    )
    log.info("starting the TaskQueue operator", extra={"namespaces": settings.namespaces or "all"})
    asyncio.run(_operate(settings, registry, tls))
    return 0


async def _operate(
    settings: OperatorSettings, registry: kopf.OperatorRegistry, tls: WebhookTls | None
) -> None:
    renewals = (
        asyncio.create_task(tls.renewer.keep_renewed(), name="webhook certificate renewal")
        if tls is not None and tls.renewer is not None
        else None
    )
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            priority=settings.priority,
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        )
    finally:
        if renewals is not None:
            renewals.cancel()
