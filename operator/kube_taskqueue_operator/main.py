"""Entry point of `kube-taskqueue operator`: read the settings, build the adapters, run kopf."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import kopf
import kubernetes
import pydantic
import urllib3
import yaml

from kube_taskqueue_operator.failpoints import Failpoints
from kube_taskqueue_operator.handlers import register
from kube_taskqueue_operator.reconcile import Reconciler, SqsClients
from kube_taskqueue_operator.settings import OperatorSettings, describe, from_environment
from kube_taskqueue_operator.webhookcerts import CertificateError
from kube_taskqueue_operator.webhookserver import WebhookTls, prepare
from kube_taskqueue_operator.workloads import Workloads

log = logging.getLogger(__name__)


class NoCredentials(Exception):
    """Neither a service account nor a kubeconfig to reach the API server with."""


def _client() -> kubernetes.client.ApiClient:
    """Credentials as kopf's login looks for them: the pod's service account, else the
    kubeconfig (`KUBECONFIG`, else `~/.kube/config`)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException as in_cluster:
        try:
            kubernetes.config.load_kube_config()
        except (kubernetes.config.ConfigException, OSError, yaml.YAMLError) as kubeconfig:
            raise NoCredentials(_no_credentials(in_cluster, kubeconfig)) from None
    return kubernetes.client.ApiClient()


def _no_credentials(in_cluster: Exception, kubeconfig: Exception) -> str:
    """One line: where credentials were looked for and what each place said."""
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        pod = "not in a pod (KUBERNETES_SERVICE_HOST is not set)"
    else:
        pod = f"the pod's service account: {in_cluster}"
    named = os.environ.get("KUBECONFIG")
    if named:
        problem = _kubeconfig_problem(named.split(os.pathsep), kubeconfig)
        config = f"KUBECONFIG={named} {problem}"
    else:
        problem = _kubeconfig_problem(["~/.kube/config"], kubeconfig)
        config = f"KUBECONFIG is not set and ~/.kube/config {problem}"
    return (
        f"no Kubernetes credentials: {pod}; {config}. Run it in a pod with a service "
        "account, or set KUBECONFIG to a kubeconfig file"
    )


def _kubeconfig_problem(paths: Sequence[str], error: Exception) -> str:
    if not any(Path(path).expanduser().exists() for path in paths if path):
        return "does not exist"
    if isinstance(error, yaml.YAMLError):
        return "is not valid YAML"
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"is not usable: {text.rstrip('.')}"


def _connect(api: kubernetes.client.ApiClient, settings: OperatorSettings) -> Workloads:
    """Check that the API server answers and takes the credentials, before kopf starts (it
    would log a traceback per retry): one authenticated call, then discovery."""
    urllib3_log = logging.getLogger("urllib3")
    level = urllib3_log.level
    urllib3_log.setLevel(logging.ERROR)  # its retry warnings say what the one line says
    try:
        kubernetes.client.VersionApi(api).get_code(_request_timeout=30)
        return Workloads(api, field_manager=settings.field_manager)
    finally:
        urllib3_log.setLevel(level)


def _unreachable(error: Exception) -> str:
    if isinstance(error, kubernetes.client.ApiException):
        refused = " (the credentials were refused)" if error.status == 401 else ""
        return f"{error.status} {error.reason}{refused}"
    reason = getattr(error, "reason", None) or error
    # urllib3 prefixes the connection object's repr: keep what happened.
    return str(reason).split("): ", 1)[-1]


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
    try:
        api = _client()
    except NoCredentials as error:
        print(f"kube-taskqueue operator: {error}", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    try:
        workloads = _connect(api, settings)
    except (urllib3.exceptions.HTTPError, kubernetes.client.ApiException) as error:
        print(
            f"kube-taskqueue operator: cannot use the Kubernetes API server at "
            f"{api.configuration.host}: {_unreachable(error)}",
            file=sys.stderr,
        )
        return 1
    try:
        tls = prepare(settings, api) if settings.webhook_enabled else None
    except CertificateError as error:
        log.error("cannot serve the admission webhook: %s", error)
        return 1
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
