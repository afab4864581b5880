"""Entry point of `kube-taskqueue operator`: read the settings, build the adapters, run kopf."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import aiohttp.web
import kopf
import kubernetes
import pydantic
import urllib3
import yaml
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kube_taskqueue_operator.claims import ClaimIndex, ClaimWatcher
from kube_taskqueue_operator.failpoints import Failpoints
from kube_taskqueue_operator.handlers import register
from kube_taskqueue_operator.metrics import OperatorMetrics
from kube_taskqueue_operator.policies import PolicyIndex, PolicyWatcher
from kube_taskqueue_operator.reconcile import Reconciler, SqsClients
from kube_taskqueue_operator.settings import OperatorSettings, describe, from_environment
from kube_taskqueue_operator.webhookcerts import CertificateError
from kube_taskqueue_operator.webhookserver import WebhookTls, prepare
from kube_taskqueue_operator.workloads import Workloads

log = logging.getLogger(__name__)


class NoCredentials(Exception):
    """Neither a service account nor a kubeconfig to reach the API server with."""


#: Connections to the API server the reconcile threads share (settings.workers at most 256).
API_CONNECTIONS = 64


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
    configuration = kubernetes.client.Configuration.get_default_copy()
    # A connection per reconcile thread (the default pool is 5 per CPU: threads beyond it
    # would open and drop connections).
    configuration.connection_pool_maxsize = API_CONNECTIONS
    return kubernetes.client.ApiClient(configuration)


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


def _ensure_peering(api: kubernetes.client.ApiClient, settings: OperatorSettings) -> None:
    """Create kopf's peering object when it is absent: kopf only patches it, and with none
    every replica would reconcile. A ClusterKopfPeering when watching the cluster, else a
    KopfPeering per watched namespace (as kopf looks them up). Raises ApiException (404 when
    kopf's peering CRDs are not installed)."""
    assert settings.peering
    objects = kubernetes.client.CustomObjectsApi(api)
    metadata = {"name": settings.peering}
    try:
        if not settings.namespaces:
            objects.create_cluster_custom_object(
                "kopf.dev",
                "v1",
                "clusterkopfpeerings",
                {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": metadata},
            )
        for namespace in settings.namespaces:
            try:
                objects.create_namespaced_custom_object(
                    "kopf.dev",
                    "v1",
                    namespace,
                    "kopfpeerings",
                    {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": metadata},
                )
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise
    except kubernetes.client.ApiException as error:
        if error.status != 409:  # another replica made it first
            raise


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
    if settings.peering and settings.priority is None:
        # Replicas of one Deployment share their environment: each draws its own priority,
        # as a tie would pause them all.
        settings = settings.model_copy(update={"priority": secrets.randbelow(2**31 - 2) + 1})
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
    if settings.peering:
        try:
            _ensure_peering(api, settings)
        except kubernetes.client.ApiException as error:
            missing = " (are kopf's peering CRDs installed?)" if error.status == 404 else ""
            print(
                f"kube-taskqueue operator: cannot create the peering object "
                f"{settings.peering!r}: {error.status} {error.reason}{missing}",
                file=sys.stderr,
            )
            return 1
    try:
        tls = prepare(settings, api) if settings.webhook_enabled else None
    except CertificateError as error:
        log.error("cannot serve the admission webhook: %s", error)
        return 1
    policies = PolicyIndex(
        default=settings.default_policy, default_endpoint=settings.default_endpoint
    )
    policy_watcher = PolicyWatcher(api, policies)
    reconciler = Reconciler(
        workloads=workloads,
        clients=SqsClients(
            call_timeout=settings.sqs_call_timeout,
            calls_per_endpoint=settings.sqs_calls_per_endpoint,
        ),
        defaults=settings.sqs_defaults,
        failpoints=Failpoints(settings.failpoint),
        policies=policies,
        queue_drift_interval=settings.queue_drift_interval,
    )
    claims = ClaimIndex(
        resolve=reconciler.resolve,
        scopes=settings.claim_scopes or [None],
        permitted=reconciler.permitted,
    )
    watcher = ClaimWatcher(
        api, claims, namespaces=settings.claim_scopes, initial_delay=settings.claims_initial_delay
    )
    started = threading.Event()
    metrics = OperatorMetrics()
    registry = kopf.OperatorRegistry()
    register(
        registry,
        operator=settings,
        reconciler=reconciler,
        workloads=workloads,
        webhook_tls=tls,
        claims=claims,
        started=started,
        metrics=metrics,
    )
    log.info(
        "starting the TaskQueue operator",
        extra={
            "namespaces": settings.namespaces or "all",
            "peering": settings.peering,
            "priority": settings.priority,
        },
    )
    watcher.start()
    policy_watcher.start()
    probes = Probes(claims=claims, policies=policies, started=started)
    try:
        asyncio.run(_operate(settings, registry, tls, probes, metrics))
    finally:
        watcher.stop()
        policy_watcher.stop()
    return 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Probes:
    claims: ClaimIndex
    policies: PolicyIndex
    started: threading.Event
    """Set when kopf's start-up handler is done: it then serves the webhook and watches."""
    webhook: tuple[str, int] | None = None
    """Where the webhook listens, when it is served."""

    def live(self) -> bool:
        return self.started.is_set()

    async def ready(self) -> bool:
        """Admits correctly: the claim and policy indexes are complete and the webhook
        answers."""
        if not (self.claims.complete and self.policies.complete and self.started.is_set()):
            return False
        if self.webhook is None:
            return True
        host, port = self.webhook
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True


async def _serve_probes(
    listen: str, port: int, probes: Probes, metrics: CollectorRegistry
) -> aiohttp.web.AppRunner:
    """`/healthz` (liveness: kopf is running, as its own endpoint said), `/readyz`
    (readiness: this replica admits correctly) and `/metrics` (Prometheus), on one port,
    listening from the start."""

    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        if probes.live():
            return aiohttp.web.Response(text="ok\n")
        return aiohttp.web.Response(status=503, text="starting\n")

    async def readyz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        if await probes.ready():
            return aiohttp.web.Response(text="ready\n")
        return aiohttp.web.Response(status=503, text="loading the claim and policy indexes\n")

    async def scrape(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(
            body=generate_latest(metrics), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = aiohttp.web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, listen, port).start()
    return runner


async def _operate(
    settings: OperatorSettings,
    registry: kopf.OperatorRegistry,
    tls: WebhookTls | None,
    probes: Probes,
    metrics: OperatorMetrics,
) -> None:
    if tls is not None:
        host = "127.0.0.1" if settings.webhook_listen in ("0.0.0.0", "::") else None
        probes = dataclasses.replace(
            probes, webhook=(host or settings.webhook_listen, settings.webhook_port)
        )
    runner = await _serve_probes(
        settings.health_listen, settings.health_port, probes, metrics.registry
    )
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
            priority=settings.priority or 0,
        )
    finally:
        if renewals is not None:
            renewals.cancel()
        await runner.cleanup()
