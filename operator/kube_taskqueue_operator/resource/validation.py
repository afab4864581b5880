"""Validation of TaskQueues: one function, used by `kube-taskqueue validate`, the admission
webhook and the operator's handlers. Every problem is reported at once, and each names the
queue, the tasks and the processors involved.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic
from croniter import croniter

from kube_taskqueue_operator.resource.models import TaskQueue
from kube_taskqueue_operator.resource.naming import (
    cronjob_name,
    dead_letter_name,
    physical_name,
    workload_name,
)

#: Kubernetes object names are DNS labels of at most 63 characters.
MAX_OBJECT_NAME = 63


@dataclasses.dataclass(frozen=True, kw_only=True)
class Problem:
    resource: str
    """`namespace/name` of the TaskQueue."""
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.message}"


def parse(document: Mapping[str, Any], *, default_namespace: str = "default") -> TaskQueue:
    """Parse a TaskQueue document; raises `InvalidDocument` with every schema problem."""
    try:
        resource = TaskQueue.model_validate(document)
    except pydantic.ValidationError as error:
        metadata = document.get("metadata") if isinstance(document, Mapping) else None
        name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
        namespace = (
            metadata.get("namespace", default_namespace)
            if isinstance(metadata, Mapping)
            else default_namespace
        )
        raise InvalidDocument(
            [
                Problem(resource=f"{namespace}/{name}", message=_describe(item))
                for item in error.errors()
            ]
        ) from None
    if resource.metadata.namespace is None:
        resource.metadata.namespace = default_namespace
    return resource


class InvalidDocument(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def validate_one(resource: TaskQueue) -> list[Problem]:
    """The rules within one resource."""
    spec = resource.spec
    problems: list[str] = []
    for kind, names in (
        ("queue", [q.name for q in spec.queues]),
        ("task", [t.name for t in spec.tasks]),
        ("processor", [p.name for p in spec.processors]),
    ):
        for name, count in sorted(Counter(names).items()):
            if count > 1:
                problems.append(f"{kind} {name!r} is declared {count} times")

    if spec.sqs.region is None:
        problems.append("spec.sqs.region is not set and the operator has no default region")
    queues = {q.name for q in spec.queues}
    tasks = {t.name: t for t in spec.tasks}
    for task in spec.tasks:
        if task.queue not in queues:
            problems.append(
                f"task {task.name!r} uses queue {task.queue!r}, which is not declared in "
                f"spec.queues (declared: {', '.join(sorted(queues))})"
            )
        if task.schedule is not None and not croniter.is_valid(task.schedule):
            problems.append(
                f"task {task.name!r} has an invalid cron schedule {task.schedule!r} "
                "(expected five fields, e.g. '0 * * * *')"
            )
        if task.payload is not None and task.schedule is None:
            problems.append(f"task {task.name!r} has a payload but no schedule to send it on")

    owners: dict[str, list[str]] = defaultdict(list)
    for processor in spec.processors:
        for name in processor.tasks:
            if name not in tasks:
                problems.append(
                    f"processor {processor.name!r} names unknown task {name!r} "
                    f"(declared tasks: {', '.join(sorted(tasks))})"
                )
            elif processor.name not in owners[name]:
                owners[name].append(processor.name)
        if len(workload_name(resource, processor.name)) > MAX_OBJECT_NAME:
            problems.append(
                f"processor {processor.name!r}: the Deployment name "
                f"{workload_name(resource, processor.name)!r} is longer than {MAX_OBJECT_NAME}"
            )
    cronjobs: dict[str, list[str]] = defaultdict(list)
    for task in spec.tasks:
        if task.schedule is not None:
            cronjobs[cronjob_name(resource, task.name)].append(task.name)
    for cronjob, clashing in sorted(cronjobs.items()):
        if len(clashing) > 1:
            problems.append(
                f"scheduled tasks {', '.join(clashing)} would share the CronJob name {cronjob!r}"
            )

    for name in tasks:
        if not owners[name]:
            problems.append(f"task {name!r} is assigned to no processor")
        elif len(owners[name]) > 1:
            problems.append(
                f"task {name!r} is assigned to more than one processor: {', '.join(owners[name])}"
            )

    for queue in sorted(queues):
        queue_tasks = sorted(name for name, task in tasks.items() if task.queue == queue)
        by_processor: dict[str, list[str]] = defaultdict(list)
        for name in queue_tasks:
            for owner in owners[name]:
                by_processor[owner].append(name)
        if len(by_processor) > 1:
            spread = "; ".join(
                f"{owner}: {', '.join(names)}" for owner, names in sorted(by_processor.items())
            )
            problems.append(
                f"queue {queue!r} is split across processors ({spread}); all tasks of a queue "
                "must belong to one processor, or messages are read by the wrong one and end "
                "in the dead-letter queue"
            )
    return [Problem(resource=resource.key, message=message) for message in problems]


def validate_all(resources: Iterable[TaskQueue]) -> list[Problem]:
    """Every rule, within each resource and across them (no shared physical queue)."""
    resources = list(resources)
    problems = [problem for resource in resources for problem in validate_one(resource)]
    claims: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for resource in resources:
        sqs = resource.spec.sqs
        for queue in resource.spec.queues:
            names = [physical_name(resource, queue.name)]
            if queue.dead_letter is not None:
                names.append(dead_letter_name(resource, queue.name))
            for name in names:
                identity = (sqs.region or "?", sqs.endpoint or "aws", name)
                if resource.key not in claims[identity]:
                    claims[identity].append(resource.key)
    for (region, endpoint, name), owners in sorted(claims.items()):
        if len(owners) > 1:
            for owner in owners:
                others = ", ".join(o for o in owners if o != owner)
                problems.append(
                    Problem(
                        resource=owner,
                        message=f"SQS queue {name!r} (region {region}, endpoint {endpoint}) "
                        f"is also declared by TaskQueue {others}; a physical queue belongs "
                        "to one resource",
                    )
                )
    return problems


def validate_against(resource: TaskQueue, others: Iterable[TaskQueue]) -> list[Problem]:
    """Problems of `resource` alone, checked against the other resources of the cluster."""
    peers = [other for other in others if other.key != resource.key]
    return [p for p in validate_all([resource, *peers]) if p.resource == resource.key]


def _describe(item: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in item["loc"]) or "(document)"
    return f"{where}: {item['msg']}"
