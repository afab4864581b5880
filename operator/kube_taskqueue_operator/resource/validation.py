"""Validation of TaskQueues: one function, used by `kube-taskqueue validate`, the admission
webhook and the operator's handlers. Every problem is reported at once, and each names the
queue, the tasks and the processors involved.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from kube_taskqueue_operator.resource.cron import schedule_problem
from kube_taskqueue_operator.resource.models import (
    SCALE_TO_ZERO,
    ProcessorSpec,
    TaskQueue,
    TaskSpec,
)
from kube_taskqueue_operator.resource.naming import (
    CREDENTIAL_ENV,
    JOB_NAME_ENV,
    REGION_ENV,
    cronjob_name,
    dead_letter_name,
    physical_name,
    workload_name,
)

#: Kubernetes object names are DNS labels of at most 63 characters.
MAX_OBJECT_NAME = 63
#: What the API server takes as a TaskQueue's name (RFC 1123 subdomain).
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_RESOURCE_NAME = 253


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
    owners = _owners(resource)
    problems = [
        *_name_problems(resource),
        *_duplicates(resource),
        *_region_problems(resource),
        *(p for task in spec.tasks for p in _task_problems(resource, task)),
        *(p for processor in spec.processors for p in _processor_problems(resource, processor)),
        *_cronjob_clashes(resource),
        *_assignment_problems(resource, owners),
        *_split_problems(resource, owners),
    ]
    return [Problem(resource=resource.key, message=message) for message in problems]


def _name_problems(resource: TaskQueue) -> list[str]:
    name = resource.metadata.name
    if len(name) <= MAX_RESOURCE_NAME and DNS_SUBDOMAIN.match(name):
        return []
    # The API server refuses such a TaskQueue; say so before it gets there.
    return [
        f"metadata.name {name!r} is not a lowercase RFC 1123 subdomain (at most "
        f"{MAX_RESOURCE_NAME} lower-case letters, digits, '-' and '.', starting and ending with "
        "a letter or digit)"
    ]


def _duplicates(resource: TaskQueue) -> list[str]:
    spec = resource.spec
    problems = []
    for kind, names in (
        ("queue", [q.name for q in spec.queues]),
        ("task", [t.name for t in spec.tasks]),
        ("processor", [p.name for p in spec.processors]),
    ):
        for name, count in sorted(Counter(names).items()):
            if count > 1:
                problems.append(f"{kind} {name!r} is declared {count} times")
    return problems


def _region_problems(resource: TaskQueue) -> list[str]:
    if resource.spec.sqs.region is not None:
        return []
    return [
        "spec.sqs.region is not set and there is no default region (the operator's "
        "TASKQUEUE_DEFAULT_REGION; --default-region for kube-taskqueue validate and render)"
    ]


def _task_problems(resource: TaskQueue, task: TaskSpec) -> list[str]:
    queues = sorted({q.name for q in resource.spec.queues})
    problems = []
    if task.queue not in queues:
        problems.append(
            f"task {task.name!r} uses queue {task.queue!r}, which is not declared in "
            f"spec.queues (declared: {', '.join(queues)})"
        )
    if task.schedule is not None:
        why = schedule_problem(task.schedule)
        if why is not None:
            problems.append(
                f"task {task.name!r} has an invalid cron schedule {task.schedule!r}: {why}"
            )
    if task.payload is not None and task.schedule is None:
        problems.append(f"task {task.name!r} has a payload but no schedule to send it on")
    return problems


def _processor_problems(resource: TaskQueue, processor: ProcessorSpec) -> list[str]:
    tasks = sorted({t.name for t in resource.spec.tasks})
    problems = [
        f"processor {processor.name!r} names unknown task {name!r} "
        f"(declared tasks: {', '.join(tasks)})"
        for name in dict.fromkeys(processor.tasks)
        if name not in tasks
    ]
    deployment = workload_name(resource, processor.name)
    if len(deployment) > MAX_OBJECT_NAME:
        problems.append(
            f"processor {processor.name!r}: the Deployment name {deployment!r} is longer than "
            f"{MAX_OBJECT_NAME}"
        )
    scaling = processor.autoscaling
    if scaling is not None and not scaling.external and scaling.min_replicas < 1:
        problems.append(
            f"processor {processor.name!r}: autoscaling.minReplicas is 0: {SCALE_TO_ZERO}"
        )
    problems.extend(_env_problems(resource, processor))
    return problems


def _env_problems(resource: TaskQueue, processor: ProcessorSpec) -> list[str]:
    """Names the operator sets itself, or twice: server-side apply refuses the Deployment."""
    names = [variable.name for variable in processor.env or []]
    problems = [
        f"processor {processor.name!r}: env variable {name!r} is set {count} times"
        for name, count in sorted(Counter(names).items())
        if count > 1
    ]
    for name in dict.fromkeys(names):
        if name in CREDENTIAL_ENV:
            problems.append(
                f"processor {processor.name!r}: env variable {name!r} is a credential; put it "
                "in the Secret named by spec.sqs.credentialsSecret, never inline"
            )
        elif name in REGION_ENV:
            problems.append(
                f"processor {processor.name!r}: env variable {name!r} is set by the operator "
                "from spec.sqs.region; set the region there"
            )
        elif name == JOB_NAME_ENV:
            problems.append(
                f"processor {processor.name!r}: env variable {name!r} is set by the operator "
                "(scheduled tasks); use another name"
            )
    return problems


def _owners(resource: TaskQueue) -> dict[str, list[str]]:
    """Task name → the processors that name it (declared tasks only)."""
    tasks = {t.name for t in resource.spec.tasks}
    owners: dict[str, list[str]] = {name: [] for name in tasks}
    for processor in resource.spec.processors:
        for name in processor.tasks:
            if name in tasks and processor.name not in owners[name]:
                owners[name].append(processor.name)
    return owners


def _cronjob_clashes(resource: TaskQueue) -> list[str]:
    cronjobs: dict[str, list[str]] = defaultdict(list)
    for task in resource.spec.tasks:
        if task.schedule is not None:
            cronjobs[cronjob_name(resource, task.name)].append(task.name)
    return [
        f"scheduled tasks {', '.join(clashing)} would share the CronJob name {cronjob!r}"
        for cronjob, clashing in sorted(cronjobs.items())
        if len(clashing) > 1
    ]


def _assignment_problems(resource: TaskQueue, owners: Mapping[str, list[str]]) -> list[str]:
    problems = []
    for name in dict.fromkeys(t.name for t in resource.spec.tasks):
        if not owners[name]:
            problems.append(f"task {name!r} is assigned to no processor")
        elif len(owners[name]) > 1:
            problems.append(
                f"task {name!r} is assigned to more than one processor: {', '.join(owners[name])}"
            )
    return problems


def _split_problems(resource: TaskQueue, owners: Mapping[str, list[str]]) -> list[str]:
    tasks = {t.name: t for t in resource.spec.tasks}
    problems = []
    for queue in sorted({q.name for q in resource.spec.queues}):
        by_processor: dict[str, list[str]] = defaultdict(list)
        for name in sorted(name for name, task in tasks.items() if task.queue == queue):
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
    return problems


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
    if item["type"] in ("model_type", "dict_type"):
        # pydantic's text names the Python class ("instance of SqsSpec"): say it in YAML.
        return f"{where}: expected a mapping, got {_yaml_kind(item.get('input'))}"
    return f"{where}: {item['msg']}"


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "an empty value (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"[:60]
