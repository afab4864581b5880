"""The reconcile logic in this process against the test control plane and moto's SQS server.

No kopf here: each test drives `Reconciler.reconcile`/`finalize` as the handlers do (reconcile,
then write the status), so it can reconcile twice, between two edits, at the moment it wants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from kube_taskqueue_operator.policies import PolicyIndex
from kube_taskqueue_operator.reconcile import Outcome, Reconciler, SqsClients
from kube_taskqueue_operator.resource.defaults import SqsDefaults
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION
from kube_taskqueue_operator.resource.policy import parse_rules
from kube_taskqueue_operator.workloads import Workloads
from operator_harness import PERMISSIVE_POLICY

FIELD_MANAGER = "kube-taskqueue-operator"


@dataclasses.dataclass
class Driver:
    """Creates TaskQueues and reconciles them as the kopf handlers would."""

    api: Any
    namespace: str
    reconciler: Reconciler
    workloads: Workloads
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    @property
    def custom(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.api)

    def create(self, document: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, document
        )
        return body

    def get(self, name: str = "app") -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return body

    def patch_spec(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )
        return body

    def reconcile(self, name: str = "app", peers: list[dict[str, Any]] | None = None) -> Outcome:
        body = self.get(name)
        outcome = self.reconciler.reconcile(body, peers=peers or [], emit=self.emit)
        self.workloads.patch_status(namespace=self.namespace, name=name, status=outcome.status)
        return outcome

    def emit(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    def condition(self, kind: str, name: str = "app") -> dict[str, Any]:
        found = [c for c in self.get(name)["status"]["conditions"] if c["type"] == kind]
        assert found, f"no condition {kind}"
        return found[0]

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


@pytest.fixture
def make_reconciler(kube_client: Any) -> Callable[..., Reconciler]:
    def make(**options: Any) -> Reconciler:
        clients = options.pop("clients", None)
        options.setdefault(
            "policies", PolicyIndex(default=parse_rules(PERMISSIVE_POLICY), loaded=True)
        )
        return Reconciler(
            workloads=Workloads(kube_client, field_manager=FIELD_MANAGER),
            clients=SqsClients(call_timeout=3) if clients is None else clients,
            defaults=SqsDefaults(),
            **options,
        )

    return make


@pytest.fixture
def driver(
    kube_client: Any, crd: Any, namespace: str, make_reconciler: Callable[..., Reconciler]
) -> Driver:
    return Driver(
        api=kube_client,
        namespace=namespace,
        reconciler=make_reconciler(),
        workloads=Workloads(kube_client, field_manager=FIELD_MANAGER),
    )
