"""Which queues a `dlq` command is about: those of a processor config file, or those a
TaskQueue in the cluster reports in its status (read with the user's kubeconfig, as kubectl
does; the SQS calls use the user's own AWS credentials)."""

from __future__ import annotations

import dataclasses
from typing import Any

from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import ProcessorConfig


class TargetError(Exception):
    """The queue or TaskQueue asked for cannot be found; one line."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """Where the queues are and their URLs, by logical queue name."""

    region: str
    endpoint: str | None
    urls: dict[str, str | None]
    """None: to be looked up by `physical` name (GetQueueUrl)."""
    physical: dict[str, str]
    source: str

    def only(self, queue: str | None) -> Target:
        if queue is None:
            return self
        if queue not in self.physical:
            raise TargetError(
                f"{self.source} has no queue {queue!r} (its queues: "
                f"{', '.join(sorted(self.physical)) or 'none'})"
            )
        return dataclasses.replace(
            self, urls={queue: self.urls.get(queue)}, physical={queue: self.physical[queue]}
        )


def from_config(config: ProcessorConfig, *, source: str) -> Target:
    """Every queue a task of the config's app uses."""
    provider, _ = resolve(config.model_copy(update={"tasks": None}))
    queues = sorted({provider[name].queue for name in provider.names})
    return Target(
        region=config.sqs.region,
        endpoint=config.sqs.endpoint,
        urls={queue: config.queue_settings(queue).url for queue in queues},
        physical={queue: config.physical_name(queue) for queue in queues},
        source=source,
    )


def from_cluster(namespace: str, name: str) -> Target:
    """The queues of TaskQueue `namespace/name`, from its status (the operator writes the
    URLs there once it has made them)."""
    try:
        import kubernetes  # noqa: PLC0415 - only this way of addressing needs it
    except ImportError:
        raise TargetError(
            "addressing a TaskQueue needs the kubernetes client: pip install "
            "'kube-taskqueue[operator]' (or give --config with a processor configuration)"
        ) from None
    try:
        kubernetes.config.load_kube_config()
    except (kubernetes.config.ConfigException, OSError, ValueError) as error:
        # ValueError: PyYAML's errors, for a kubeconfig that is not YAML.
        raise TargetError(f"no usable kubeconfig: {error}") from None
    api = kubernetes.client.CustomObjectsApi()
    try:
        body: Any = api.get_namespaced_custom_object(
            "taskqueue.dev", "v1alpha1", namespace, "taskqueues", name
        )
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise TargetError(f"TaskQueue {namespace}/{name} does not exist") from None
        raise TargetError(
            f"cannot read TaskQueue {namespace}/{name}: {error.status} {error.reason}"
        ) from None
    except Exception as error:  # urllib3's connection errors: the API server is not there
        raise TargetError(f"cannot reach the Kubernetes API server: {error}") from None
    sqs = body.get("spec", {}).get("sqs", {})
    queues = body.get("status", {}).get("queues") or []
    if not queues:
        raise TargetError(
            f"TaskQueue {namespace}/{name} reports no queues yet (status.queues is empty: see "
            f"`kubectl describe tq {name} -n {namespace}`)"
        )
    urls = {str(q["name"]): str(q["url"]) for q in queues if q.get("url")}
    return Target(
        region=str(sqs.get("region") or region_of(next(iter(urls.values()), ""))),
        endpoint=sqs.get("endpoint") or None,
        urls=dict(urls),
        physical={queue: url.rsplit("/", 1)[-1] for queue, url in urls.items()},
        source=f"TaskQueue {namespace}/{name}",
    )


def region_of(url: str) -> str:
    """The region in an AWS queue URL (https://sqs.<region>.amazonaws.com/...)."""
    host = url.split("//", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs":
        return parts[1]
    return "us-east-1"
