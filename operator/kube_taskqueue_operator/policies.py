"""The cluster's TaskQueuePolicies and the labels of its namespaces, kept from watches, as the
`Tenancy` the admission webhook and the reconciler check every TaskQueue against.

Like the claim index it is complete on every replica before anything is admitted or
reconciled: until both first lists are in, `complete` is False (admission is refused,
`/readyz` fails). A policy that does not parse closes the gate for every TaskQueue until it is
fixed, as what it would forbid is unknown (the CRD's schema, generated from the same model,
makes that rare).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import kubernetes

from kube_taskqueue_operator.resource.models import GROUP, VERSION
from kube_taskqueue_operator.resource.policy import (
    POLICY_PLURAL,
    InvalidPolicy,
    PolicyRules,
    TaskQueuePolicy,
    Tenancy,
    parse_policy,
)
from kube_taskqueue_operator.watching import ListWatch

log = logging.getLogger(__name__)

POLICIES = "policies"
NAMESPACES = "namespaces"


class PolicyIndex:
    """Thread-safe; `tenancy()` is a consistent snapshot."""

    def __init__(
        self,
        *,
        default: PolicyRules | None = None,
        default_endpoint: str | None = None,
        loaded: bool = False,
    ) -> None:
        """`loaded`: complete from the start (no watch feeds it: tests, `validate`)."""
        self._default = default or PolicyRules()
        self._default_endpoint = default_endpoint
        self._lock = threading.Lock()
        self._policies: dict[str, TaskQueuePolicy] = {}
        self._broken: dict[str, str] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._pending = set() if loaded else {POLICIES, NAMESPACES}
        self._snapshot = self._build()

    # -- what the watches tell it ------------------------------------------------------

    def replace_policies(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._policies.clear()
            self._broken.clear()
            for body in bodies:
                self._put_policy(body)
            self._loaded(POLICIES)

    def policy_event(self, kind: str, body: Mapping[str, Any]) -> None:
        name = str(body.get("metadata", {}).get("name"))
        with self._lock:
            self._policies.pop(name, None)
            self._broken.pop(name, None)
            if kind != "DELETED":
                self._put_policy(body)
            self._snapshot = self._build()

    def replace_namespaces(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._labels = {_name(b): _labels(b) for b in bodies}
            self._loaded(NAMESPACES)

    def namespace_event(self, kind: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            if kind == "DELETED":
                self._labels.pop(_name(body), None)
            else:
                self._labels[_name(body)] = _labels(body)
            self._snapshot = self._build()

    # -- what admission and reconcile ask ----------------------------------------------

    @property
    def complete(self) -> bool:
        with self._lock:
            return not self._pending

    def tenancy(self) -> Tenancy:
        with self._lock:
            return self._snapshot

    # -- internals ---------------------------------------------------------------------

    def _put_policy(self, body: Mapping[str, Any]) -> None:
        name = str(body.get("metadata", {}).get("name"))
        try:
            self._policies[name] = parse_policy(body)
        except InvalidPolicy as error:
            log.error("TaskQueuePolicy %s cannot be read: %s", name, error)
            self._broken[name] = str(error)

    def _loaded(self, part: str) -> None:
        self._pending.discard(part)
        self._snapshot = self._build()

    def _build(self) -> Tenancy:
        return Tenancy(
            policies=tuple(self._policies.values()),
            default=self._default,
            namespace_labels={k: dict(v) for k, v in self._labels.items()},
            default_endpoint=self._default_endpoint,
            broken=tuple(f"{name!r}: {why}" for name, why in sorted(self._broken.items())),
        )


def _name(body: Mapping[str, Any]) -> str:
    return str(body.get("metadata", {}).get("name"))


def _labels(body: Mapping[str, Any]) -> dict[str, str]:
    return dict(body.get("metadata", {}).get("labels") or {})


class PolicyWatcher:
    """Keeps a `PolicyIndex` from watches of TaskQueuePolicies and Namespaces."""

    #: Seconds between lists while the TaskQueuePolicy CRD is not installed.
    ABSENT_RETRY_SECONDS = 30.0

    def __init__(self, api: kubernetes.client.ApiClient, index: PolicyIndex) -> None:
        self._objects = kubernetes.client.CustomObjectsApi(api)
        self._absent = False
        self._watches = [
            ListWatch(
                name="policies",
                list_objects=self._list_policies,
                on_list=index.replace_policies,
                on_event=index.policy_event,
            ),
            ListWatch(
                name="namespaces",
                list_objects=kubernetes.client.CoreV1Api(api).list_namespace,
                on_list=index.replace_namespaces,
                on_event=index.namespace_event,
            ),
        ]

    def start(self) -> None:
        for watch in self._watches:
            watch.start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()

    def _list_policies(self, **kwargs: Any) -> Any:
        """Without the CRD no policy can exist: an empty list, so the operator still starts
        (with the default policy for every namespace) and looks again now and then."""
        try:
            listed = self._objects.list_cluster_custom_object(
                GROUP, VERSION, POLICY_PLURAL, **kwargs
            )
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            if self._absent:
                time.sleep(self.ABSENT_RETRY_SECONDS)
            elif not kwargs.get("watch"):
                log.warning(
                    "the TaskQueuePolicy CRD is not installed: the default policy applies to "
                    "every namespace"
                )
            self._absent = True
            if kwargs.get("watch"):
                raise
            return {"items": [], "metadata": {"resourceVersion": ""}}
        self._absent = False
        return listed
