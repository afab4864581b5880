"""The operator's settings: one validated tree, read from the environment at the entry point.

Every variable is `TASKQUEUE_<FIELD>` (e.g. `TASKQUEUE_DRIFT_INTERVAL=300`); the chart sets
them from its values.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Annotated

import pydantic
from pydantic import ConfigDict, Field

from kube_taskqueue_operator import failpoints
from kube_taskqueue_operator.resource.defaults import SqsDefaults
from kube_taskqueue_operator.resource.policy import PolicyRules


class OperatorSettings(pydantic.BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    namespaces: list[str] = []
    """Namespaces to watch; empty watches the whole cluster."""

    shard_selector: str | None = None
    """Labels (`key=value,key=value`) of the TaskQueues this operator reconciles: one shard of
    several operator Deployments, each with a disjoint selector or namespace set. Admission and
    the queue-claim index still cover every TaskQueue (see claims_cluster_wide)."""

    claims_cluster_wide: bool = False
    """Keep the queue-claim index of every namespace even when `namespaces` lists only some:
    shards by namespace set then still refuse a queue claimed in another shard's namespace
    (needs cluster-wide list/watch of TaskQueues)."""

    default_region: str | None = None
    """Region of TaskQueues that set none (per environment)."""
    default_endpoint: str | None = None
    """SQS endpoint of TaskQueues that set none (an SQS-compatible service)."""
    default_queue_prefix: str = ""
    """Queue-name prefix of TaskQueues that set none (per environment)."""
    default_policy: PolicyRules = PolicyRules()
    """What the TaskQueues of a namespace no TaskQueuePolicy selects may do (a JSON object
    with the fields of a TaskQueuePolicy's spec, e.g. the chart's `tenancy.defaultPolicy`);
    unset: the built-in default (resource/policy.py)."""

    drift_interval: Annotated[float, Field(gt=0)] = 180
    """Seconds between full re-checks of queues and workloads (repairs out-of-band changes).
    A few minutes: each check costs a handful of SQS and API calls per TaskQueue."""

    queue_drift_interval: Annotated[float, Field(gt=0)] = 900
    """Seconds between the drift timer's checks of a settled TaskQueue's queues in SQS
    (attributes, tags, redrive: several calls per queue); the Kubernetes objects are compared
    at every drift check. A spec change always checks both at once."""

    status_interval: Annotated[float, Field(gt=0)] = 30
    """Seconds between refreshes of queue depths and replica counts in status."""

    workers: Annotated[int, Field(ge=1, le=256)] = 32
    """Threads that run reconciles and status refreshes (kopf's executor). They mostly wait
    on SQS and the API server, so more threads keep the status timer's interval with
    thousands of TaskQueues."""

    field_manager: str = "kube-taskqueue-operator"
    """Server-side apply field manager, so our fields are ours alone."""

    sqs_call_timeout: Annotated[float, Field(gt=0)] = 10
    """Seconds to connect to SQS and to wait for each answer."""

    sqs_calls_per_endpoint: Annotated[int, Field(ge=1, le=256)] = 16
    """SQS calls in flight at once per endpoint: the most threads a hanging endpoint can hold
    (each call is also bounded by its deadline), and the status timer's parallelism (all
    TaskQueues on AWS share one endpoint per region)."""

    webhook_enabled: bool = True
    """Serve the validating admission webhook (the same rules as `kube-taskqueue validate`)."""
    webhook_host: str | None = None
    """Host name the API server reaches the webhook at, for a URL-style registration
    (development). Unset in-cluster, where the chart registers a Service reference."""
    webhook_listen: str = "0.0.0.0"  # the API server connects from outside the pod
    """Address the webhook server listens on."""
    webhook_port: Annotated[int, Field(ge=1, le=65535)] = 9443
    """Port of the webhook server (HTTPS)."""
    webhook_cert_dir: str | None = None
    """Directory with tls.crt and tls.key (e.g. mounted from cert-manager's Secret); re-read
    when the files change. Unset with no `webhook_cert_secret`: a self-signed certificate
    made at start-up (development)."""
    webhook_cert_secret: str | None = None
    """Secret (in `webhook_namespace`) where the operator keeps the webhook certificate it
    issues and renews itself, when cert-manager is off."""
    webhook_namespace: str | None = None
    """The operator's namespace: where the webhook's Service and certificate Secret live."""
    webhook_service: str | None = None
    """Service the API server calls the webhook through; its DNS names go into the
    certificate."""
    webhook_configuration: str | None = None
    """ValidatingWebhookConfiguration whose CA bundle the operator keeps in step with the
    certificate it issues (the chart's); unset when kopf registers the webhook itself."""
    webhook_cert_validity: Annotated[float, Field(gt=0)] = 90 * 24 * 3600
    """Seconds an issued certificate is valid: 90 days, cert-manager's default. It is
    renewed when a third of that is left, as cert-manager does."""
    webhook_cert_check_interval: Annotated[float, Field(gt=0)] = 60
    """Seconds between checks of the stored certificate: how soon a replica serves a
    certificate another replica renewed (the previous CA stays trusted meanwhile)."""
    webhook_managed: bool = False
    """Let the operator create/patch its ValidatingWebhookConfiguration (development)."""

    health_listen: str = "0.0.0.0"  # the kubelet's probes and Prometheus come from outside
    """Address of the `/healthz`, `/readyz` and `/metrics` endpoint."""
    health_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Port of the liveness endpoint `/healthz` (200 while the operator runs) and the
    readiness endpoint `/readyz` (200 once this replica admits correctly: its queue-claim
    index holds every TaskQueue; 503 before)."""

    peering: str | None = None
    """kopf peering name for several replicas: the one of highest priority reconciles, the
    others stand by (their webhooks keep admitting, from their own claim index); unset runs
    standalone (one replica, `strategy: Recreate`). The chart ships the peering object."""
    priority: int | None = None
    """kopf peering priority. Unset: a random one per process (1..2^31-1), so two replicas
    never tie: kopf pauses every replica of a tie, and a Deployment cannot give its pods
    different values."""
    peering_lifetime: Annotated[int, Field(ge=5, le=3600)] = 15
    """Seconds a replica's peering record lives without a keep-alive (kopf renews it every
    lifetime minus 5-10 s): the bound on failover when the active replica dies without
    handing over (a graceful stop hands over at once). kopf's default, 60, is a minute
    without reconciles."""

    log_format: str = "json"
    """`json` (one object per line) or kopf's plain text."""

    warning_repeat_interval: Annotated[float, Field(ge=0)] = 600
    """Seconds before the same Warning event (same object, reason and message) is posted
    again. A resource that stays Degraded is retried every few seconds (and by the drift
    timer); its condition says the current state, one event per episode says it happened.
    0 posts every one."""

    claims_initial_delay: Annotated[float, Field(ge=0)] = 0
    """Seconds the claim index waits before its first list (tests only: a slow start-up,
    to see admission and readiness wait for a complete index)."""

    failpoint: str | None = None
    """Crash at this named point of a reconcile (reliability tests only)."""

    @pydantic.field_validator("failpoint")
    @classmethod
    def _known_failpoint(cls, value: str | None) -> str | None:
        # Checked here, so a typo is one line naming the variable, not a traceback later.
        if value and value not in failpoints.ALL:
            raise ValueError(f"unknown failpoint {value!r} (known: {', '.join(failpoints.ALL)})")
        return value

    @pydantic.model_validator(mode="after")
    def _one_certificate_source(self) -> OperatorSettings:
        if self.webhook_cert_dir and self.webhook_cert_secret:
            raise ValueError(
                "set TASKQUEUE_WEBHOOK_CERT_DIR or TASKQUEUE_WEBHOOK_CERT_SECRET, not both"
            )
        if self.webhook_cert_secret:
            if not self.webhook_namespace:
                raise ValueError("TASKQUEUE_WEBHOOK_CERT_SECRET needs TASKQUEUE_WEBHOOK_NAMESPACE")
            if not self.webhook_hosts:
                raise ValueError(
                    "TASKQUEUE_WEBHOOK_CERT_SECRET needs TASKQUEUE_WEBHOOK_SERVICE or "
                    "TASKQUEUE_WEBHOOK_HOST to name the certificate's hosts"
                )
        return self

    @pydantic.field_validator("shard_selector")
    @classmethod
    def _equality_selector(cls, value: str | None) -> str | None:
        if value:
            _labels(value)
        return value

    @property
    def shard_labels(self) -> dict[str, str] | None:
        """The shard selector as kopf's label filter (None: every TaskQueue)."""
        return _labels(self.shard_selector) if self.shard_selector else None

    @property
    def claim_scopes(self) -> list[str]:
        """Namespaces the claim index lists (empty: the whole cluster)."""
        return [] if self.claims_cluster_wide else list(self.namespaces)

    @property
    def webhook_hosts(self) -> tuple[str, ...]:
        """Names the webhook certificate must cover."""
        hosts: list[str] = []
        if self.webhook_service and self.webhook_namespace:
            service = f"{self.webhook_service}.{self.webhook_namespace}.svc"
            hosts += [service, f"{service}.cluster.local"]
        if self.webhook_host:
            hosts.append(self.webhook_host)
        return tuple(hosts)

    @property
    def sqs_defaults(self) -> SqsDefaults:
        return SqsDefaults(
            region=self.default_region,
            endpoint=self.default_endpoint,
            queue_prefix=self.default_queue_prefix,
        )


_LABEL = re.compile(r"([A-Za-z0-9._/-]+)=([A-Za-z0-9._-]*)")


def _labels(selector: str) -> dict[str, str]:
    """`key=value,key=value` as a dict; ValueError naming the part that is not one."""
    labels: dict[str, str] = {}
    for part in (p.strip() for p in selector.split(",")):
        match = _LABEL.fullmatch(part)
        if match is None:
            raise ValueError(
                f"{part!r} is not key=value: a shard selector is equality labels, e.g. "
                "taskqueue.dev/shard=a"
            )
        labels[match[1]] = match[2]
    return labels


def from_environment(environ: Mapping[str, str] | None = None) -> OperatorSettings:
    """Read `TASKQUEUE_*` variables; lists are comma-separated."""
    environ = os.environ if environ is None else environ
    data: dict[str, object] = {}
    for name, field in OperatorSettings.model_fields.items():
        raw = environ.get(f"TASKQUEUE_{name.upper()}")
        if raw is None:
            continue
        if field.annotation == list[str]:
            data[name] = [item.strip() for item in raw.split(",") if item.strip()]
        elif field.annotation is PolicyRules:
            try:
                data[name] = json.loads(raw) if raw.strip() else {}
            except ValueError:
                data[name] = raw  # pydantic then says, naming the variable: not an object
        else:
            data[name] = raw
    return OperatorSettings.model_validate(data)


def describe(error: pydantic.ValidationError) -> list[str]:
    """One line per problem, naming the variable to fix."""
    lines = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["loc"]:
            lines.append(f"TASKQUEUE_{str(problem['loc'][0]).upper()}: {message}")
        else:
            lines.append(message)
    return lines
