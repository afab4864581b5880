"""What the dashboard shows, read from the cluster (TaskQueues, their status and events, with
the user's kubeconfig) and from SQS (live counts, dead letters, with the user's AWS
credentials). Every SQS call goes through `kube_taskqueue.ops.deadletters`, as the CLI's do."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import kubernetes
from kube_taskqueue.ops import deadletters
from kube_taskqueue.ops.deadletters import Counts, QueuePair
from kube_taskqueue.ops.targets import region_of
from kube_taskqueue.sqs import describe_error, make_client

GROUP, VERSION, PLURAL = "taskqueue.dev", "v1alpha1", "taskqueues"
#: Events shown per TaskQueue, newest first.
RECENT_EVENTS = 5


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueView:
    name: str
    url: str
    counts: Counts | None
    dead_letter_url: str | None
    dead_letters: int | None
    error: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskQueueView:
    namespace: str
    name: str
    ready: str
    reason: str
    message: str
    processors: list[dict[str, Any]]
    queues: list[QueueView]
    events: list[dict[str, str]]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


ClientFactory = Callable[[str, str | None], Any]


def default_clients() -> ClientFactory:
    """SQS clients per (region, endpoint), built once each, with the user's credentials."""
    cache: dict[tuple[str, str | None], Any] = {}
    lock = threading.Lock()

    def client(region: str, endpoint: str | None) -> Any:
        with lock:
            if (region, endpoint) not in cache:
                cache[(region, endpoint)] = make_client(
                    region=region, endpoint=endpoint, call_timeout_seconds=5
                )
            return cache[(region, endpoint)]

    return client


class Cluster:
    def __init__(
        self, api: kubernetes.client.ApiClient, *, namespace: str | None, clients: ClientFactory
    ) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self._clients = clients

    def _bodies(self) -> list[dict[str, Any]]:
        found: Any
        if self.namespace:
            found = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            )
        else:
            found = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return sorted(
            found.get("items", []),
            key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"]),
        )

    def body(self, namespace: str, name: str) -> dict[str, Any]:
        found: Any = self._custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return dict(found)

    def client_for(self, body: dict[str, Any]) -> Any:
        sqs = body.get("spec", {}).get("sqs", {})
        urls = [q.get("url", "") for q in body.get("status", {}).get("queues") or []]
        region = sqs.get("region") or region_of(urls[0] if urls else "")
        return self._clients(str(region), sqs.get("endpoint") or None)

    def taskqueues(self) -> list[TaskQueueView]:
        return [self._view(body) for body in self._bodies()]

    def _view(self, body: dict[str, Any]) -> TaskQueueView:
        metadata, status = body["metadata"], body.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        client = self.client_for(body)
        queues = [self._queue(client, entry) for entry in status.get("queues") or []]
        return TaskQueueView(
            namespace=metadata["namespace"],
            name=metadata["name"],
            ready=str(ready.get("status", "Unknown")),
            reason=str(ready.get("reason", "")),
            message=str(ready.get("message", "")),
            processors=list(status.get("processors") or []),
            queues=queues,
            events=self._events(metadata["namespace"], metadata["name"]),
        )

    def _queue(self, client: Any, entry: dict[str, Any]) -> QueueView:
        url, dead_letter_url = str(entry.get("url", "")), entry.get("deadLetterUrl")
        try:
            counts = deadletters.counts(client, url)
            dead = deadletters.counts(client, dead_letter_url) if dead_letter_url else None
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            return QueueView(
                name=str(entry.get("name")),
                url=url,
                counts=None,
                dead_letter_url=dead_letter_url,
                dead_letters=None,
                error=describe_error(error),
            )
        return QueueView(
            name=str(entry.get("name")),
            url=url,
            counts=counts,
            dead_letter_url=dead_letter_url,
            dead_letters=None if dead is None else dead.visible + dead.in_flight,
        )

    def _events(self, namespace: str, name: str) -> list[dict[str, str]]:
        try:
            items = self._core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind=TaskQueue,involvedObject.name={name}",
            ).items
        except kubernetes.client.ApiException:
            return []  # no right to read events: the rest of the page still helps
        items.sort(key=lambda e: str(e.last_timestamp or e.event_time or ""), reverse=True)
        return [
            {
                "type": str(e.type),
                "reason": str(e.reason),
                "message": str(e.message),
                "when": str(e.last_timestamp or e.event_time or ""),
            }
            for e in items[:RECENT_EVENTS]
        ]

    def pair(self, namespace: str, name: str, queue: str) -> tuple[Any, QueuePair]:
        """The client and queue pair of one queue of a TaskQueue (KeyError: no such queue)."""
        body = self.body(namespace, name)
        for entry in body.get("status", {}).get("queues") or []:
            if entry.get("name") == queue and entry.get("url"):
                client = self.client_for(body)
                return client, deadletters.locate(client, queue=queue, url=str(entry["url"]))
        raise KeyError(queue)
