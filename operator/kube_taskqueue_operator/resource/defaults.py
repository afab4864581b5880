"""Operator-wide SQS defaults (per environment), filled into resources that leave them out.

Applied before validation and rendering, by the operator and by `kube-taskqueue render`/`validate`
given the same flags, so both see the same resolved resource.
"""

from __future__ import annotations

import dataclasses

from kube_taskqueue_operator.resource.models import TaskQueue


@dataclasses.dataclass(frozen=True, kw_only=True)
class SqsDefaults:
    region: str | None = None
    endpoint: str | None = None
    queue_prefix: str = ""


def with_defaults(resource: TaskQueue, defaults: SqsDefaults) -> TaskQueue:
    sqs = resource.spec.sqs
    updates: dict[str, str] = {}
    if sqs.region is None and defaults.region:
        updates["region"] = defaults.region
    if sqs.endpoint is None and defaults.endpoint:
        updates["endpoint"] = defaults.endpoint
    if not sqs.queue_prefix and defaults.queue_prefix:
        updates["queue_prefix"] = defaults.queue_prefix
    if not updates:
        return resource
    spec = resource.spec.model_copy(update={"sqs": sqs.model_copy(update=updates)})
    return resource.model_copy(update={"spec": spec})
