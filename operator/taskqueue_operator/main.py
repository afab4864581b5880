"""Entry point of `taskqueue operator`: read the settings, build the adapters, run kopf."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import kopf
import kubernetes

from taskqueue_operator.failpoints import Failpoints
from taskqueue_operator.handlers import register
from taskqueue_operator.reconcile import Reconciler, SqsClients
from taskqueue_operator.settings import OperatorSettings, from_environment
from taskqueue_operator.workloads import Workloads

log = logging.getLogger(__name__)


def _client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="taskqueue operator",
        description="Run the TaskQueue operator. Settings come from TASKQUEUE_* variables; "
        "these flags override them.",
    )
    parser.add_argument("--namespace", action="append", help="watch only this namespace (repeat)")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args(list(argv))
    settings = from_environment()
    if options.namespace:
        settings = settings.model_copy(update={"namespaces": options.namespace})
    return serve(settings, verbose=options.verbose)


def serve(settings: OperatorSettings, *, verbose: bool = False) -> int:
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    workloads = Workloads(_client(), field_manager=settings.field_manager)
    reconciler = Reconciler(
        workloads=workloads,
        clients=SqsClients(call_timeout=settings.sqs_call_timeout),
        defaults=settings.sqs_defaults,
        failpoints=Failpoints(settings.failpoint),
    )
    registry = kopf.OperatorRegistry()
    register(registry, operator=settings, reconciler=reconciler, workloads=workloads)
    log.info("starting the TaskQueue operator", extra={"namespaces": settings.namespaces or "all"})
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            priority=settings.priority,
            liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        )
    )
    return 0
