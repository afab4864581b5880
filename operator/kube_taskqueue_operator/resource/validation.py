"""Validation of TaskQueues: one function, used by `kube-taskqueue validate`, the admission
webhook and the operator's handlers. Every problem is reported at once, and each names the
queue, the tasks and the processors involved (the limits of what is rendered from the
resource name the field path and the limit).

The rule everything here serves: a resource this module accepts renders (render.py) into
objects the API server accepts and queues SQS creates. The limits come from the constants
the renderer's names are built with (naming.py), so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from kube_taskqueue_operator.resource.cron import schedule_problem
from kube_taskqueue_operator.resource.identity import QueueIdentity, identities, normalise
from kube_taskqueue_operator.resource.models import (
    DEFAULT_REPLICAS,
    SCALE_TO_ZERO,
    ProcessorSpec,
    QueueSpec,
    TaskQueue,
    TaskSpec,
)
from kube_taskqueue_operator.resource.naming import (
    AWS_TAG_PREFIX,
    CREDENTIAL_ENV,
    DEAD_LETTER_SUFFIX,
    DNS_LABEL,
    FIFO_SUFFIX,
    JOB_NAME_ENV,
    MAX_LABEL_VALUE,
    MAX_OBJECT_NAME,
    MAX_SCHEDULED_PAYLOAD_BYTES,
    MAX_SQS_MESSAGE_BYTES,
    MAX_SQS_QUEUE_NAME,
    MAX_TAG_KEY,
    MAX_TAG_VALUE,
    OPERATOR_TAGS,
    REGION_ENV,
    cronjob_name,
    dead_letter_name,
    payload_body,
    physical_name,
    task_slug,
    workload_name,
)

#: The shape of AWS region names, from botocore's partition patterns: an area of two to four
#: letters, one or two words, a number (`eu-west-1`, `us-gov-west-1`, `us-isob-east-1`,
#: `eusc-de-east-1`). The region is the processors' AWS_REGION and part of every SQS URL.
AWS_REGION = re.compile(r"[a-z]{2,4}(-[a-z]+){1,2}-[0-9]{1,2}")
REGION_EXAMPLES = "eu-west-1, us-gov-west-1"

#: An image reference as the kubelet parses it (distribution/reference's
#: ParseNormalizedNamed): `[host[:port]/]path[:tag][@algorithm:hex]`, ASCII only, no spaces.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_IMAGE_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
#: The digests the runtime can verify (go-digest's registered algorithms, lower-case hex).
_DIGEST = r"(?:sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})"
IMAGE_REFERENCE = re.compile(rf"{_IMAGE_NAME}(?::{_TAG})?(?:@{_DIGEST})?")
#: distribution/reference's RepositoryNameTotalLengthMax: the repository's path (registry
#: left out) once normalized (`app` is `docker.io/library/app`).
MAX_IMAGE_PATH = 255
DEFAULT_REGISTRY = "docker.io"
#: A bare 64-character hex string reads as an image id, not a name.
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
#: What may precede the queue name in an SQS name (no `.fifo`: that only ends one).
QUEUE_PREFIX = re.compile(r"[A-Za-z0-9_-]*")


def normalized_image(image: str) -> str:
    """The reference with the registry Docker assumes (distribution/reference's
    splitDockerDomain): a first component with no `.` or `:`, other than `localhost` and
    all lower-case, is a path on docker.io, and a single-component path there is in
    `library/`."""
    first, slash, rest = image.partition("/")
    if not slash or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_REGISTRY, image
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = f"library/{remainder}"
    return f"{domain}/{remainder}"


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
        *_namespace_problems(resource),
        *_duplicates(resource),
        *_region_problems(resource),
        *_endpoint_problems(resource),
        *_image_problems(resource),
        *_prefix_problems(resource),
        *(
            p
            for index, queue in enumerate(spec.queues)
            for p in _queue_name_problems(resource, index, queue.name)
        ),
        *(p for index, queue in enumerate(spec.queues) for p in _tag_problems(index, queue)),
        *_physical_clashes(resource),
        *(
            p
            for index, task in enumerate(spec.tasks)
            for p in _task_problems(resource, index, task)
        ),
        *(
            p
            for index, processor in enumerate(spec.processors)
            for p in _processor_problems(resource, index, processor)
        ),
        *_cronjob_clashes(resource),
        *_assignment_problems(resource, owners),
        *_split_problems(resource, owners),
    ]
    return [Problem(resource=resource.key, message=message) for message in problems]


def _name_problems(resource: TaskQueue) -> list[str]:
    name = resource.metadata.name
    if len(name) <= MAX_LABEL_VALUE and DNS_LABEL.fullmatch(name):
        return []
    # The API server takes an RFC 1123 subdomain (dots, 253 characters), but the name is
    # also the value of the taskqueue.dev/taskqueue label and begins the DNS-label names of
    # the Deployments and CronJobs: those take only a DNS label. (fullmatch: `$` would let a
    # trailing newline through.)
    return [
        f"metadata.name {name!r} is not a DNS label: at most {MAX_LABEL_VALUE} lower-case "
        "letters, digits and '-', starting and ending with a letter or digit (it is a label "
        "value and begins the name of every object the TaskQueue makes)"
    ]


def _namespace_problems(resource: TaskQueue) -> list[str]:
    namespace = resource.namespace
    if len(namespace) <= MAX_OBJECT_NAME and DNS_LABEL.fullmatch(namespace):
        return []
    return [
        f"metadata.namespace {namespace!r} is not a DNS label: at most {MAX_OBJECT_NAME} "
        "lower-case letters, digits and '-', starting and ending with a letter or digit"
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
    region = resource.spec.sqs.region
    if region is None:
        return [
            "spec.sqs.region is not set and there is no default region (the operator's "
            "TASKQUEUE_DEFAULT_REGION; --default-region for kube-taskqueue validate and render)"
        ]
    if AWS_REGION.fullmatch(region):
        return []
    # Checked here, not only in the schema: the operator's default region fills it in.
    return [
        f"spec.sqs.region {region!r} is not an AWS region name such as {REGION_EXAMPLES} "
        f"(pattern {AWS_REGION.pattern})"
    ]


def _endpoint_problems(resource: TaskQueue) -> list[str]:
    """The schema asks only for `http(s)://` at the start; the processor's configuration (and
    botocore) need a host, so a bare `http://` would stop the rendering."""
    endpoint = resource.spec.sqs.endpoint
    if endpoint is None or _is_endpoint(endpoint):
        return []
    return [
        f"spec.sqs.endpoint {endpoint!r} is not an http(s) URL with a host, such as "
        "http://sqs.example.net:9324 (no spaces, a port of 1 to 65535)"
    ]


def _is_endpoint(endpoint: str) -> bool:
    if any(character.isspace() for character in endpoint):
        return False
    try:
        url = urllib.parse.urlsplit(endpoint)
        port = url.port  # raises for a port out of range or not a number
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.hostname) and port != 0


def _image_problems(resource: TaskQueue) -> list[str]:
    image = resource.spec.image
    match = IMAGE_REFERENCE.fullmatch(normalized_image(image))
    if (
        match is not None
        and len(match["path"]) <= MAX_IMAGE_PATH
        and not _IMAGE_ID.fullmatch(image)
    ):
        return []
    return [
        f"spec.image {image!r} is not an image reference: [registry[:port]/]repository"
        "[:tag][@sha256:<64 hex>], with a lower-case repository of at most "
        f"{MAX_IMAGE_PATH} characters after the registry (library/ counts when it names none), "
        "no spaces"
    ]


def _prefix_problems(resource: TaskQueue) -> list[str]:
    prefix = resource.spec.sqs.queue_prefix
    if QUEUE_PREFIX.fullmatch(prefix):
        return []
    # The schema refuses such a prefix; the operator's default prefix is filled in after it.
    return [
        f"spec.sqs.queuePrefix {prefix!r} may hold only letters, digits, '-' and '_' "
        "(it begins every SQS queue name)"
    ]


def _queue_name_problems(resource: TaskQueue, index: int, queue: str) -> list[str]:
    """SQS's own limit on the names made from the prefix, the queue and the DLQ suffix."""
    problems = []
    where = f"spec.queues.{index}.name {queue!r}"
    fifo = f", before {FIFO_SUFFIX!r}" if queue.endswith(FIFO_SUFFIX) else ""
    names = [(physical_name(resource, queue), "spec.sqs.queuePrefix + name")]
    if _queue(resource, queue).dead_letter is not None:
        names.append(
            (
                dead_letter_name(resource, queue),
                f"spec.sqs.queuePrefix + name + {DEAD_LETTER_SUFFIX!r}{fifo}, its dead-letter "
                "queue",
            )
        )
    for name, made in names:
        if len(name) > MAX_SQS_QUEUE_NAME:
            problems.append(
                f"{where}: the SQS queue name {name!r} ({made}) is {len(name)} characters; SQS "
                f"allows at most {MAX_SQS_QUEUE_NAME}, {FIFO_SUFFIX!r} included"
            )
    return problems


def _tag_problems(index: int, queue: QueueSpec) -> list[str]:
    """SQS's tag limits, and the operator's own tags (which would silently win)."""
    problems = []
    for key, value in (queue.tags or {}).items():
        where = f"spec.queues.{index}.tags {key!r}"
        if not key or len(key) > MAX_TAG_KEY:
            problems.append(f"{where}: a tag key is 1 to {MAX_TAG_KEY} characters")
        if key.startswith(AWS_TAG_PREFIX):
            problems.append(f"{where}: keys starting {AWS_TAG_PREFIX!r} are reserved by AWS")
        if key in OPERATOR_TAGS:
            problems.append(f"{where}: set by the operator (the queue's owner); use another key")
        if len(value) > MAX_TAG_VALUE:
            problems.append(
                f"{where}: the value is {len(value)} characters; SQS allows at most {MAX_TAG_VALUE}"
            )
    return problems


def _queue(resource: TaskQueue, name: str) -> QueueSpec:
    return next(queue for queue in resource.spec.queues if queue.name == name)


def _physical_clashes(resource: TaskQueue) -> list[str]:
    """Two queues of the resource on one SQS queue: a processor would poll another queue's
    dead letters as its work (`work` with a DLQ next to a queue `work-dlq`)."""
    users: dict[str, list[tuple[int, str]]] = defaultdict(list)
    seen: set[str] = set()
    for index, queue in enumerate(resource.spec.queues):
        if queue.name in seen:
            continue  # declared twice: reported as such
        seen.add(queue.name)
        users[physical_name(resource, queue.name)].append((index, f"queue {queue.name!r}"))
        if queue.dead_letter is not None:
            users[dead_letter_name(resource, queue.name)].append(
                (index, f"the dead-letter queue of queue {queue.name!r}")
            )
    problems = []
    for name, holders in users.items():
        if len(holders) > 1:
            (index, first), *rest = holders
            problems.append(
                f"spec.queues.{index}.name: the SQS queue name {name!r} is used by {first} and "
                f"{' and '.join(holder for _, holder in rest)}; every queue and dead-letter "
                "queue needs a name of its own"
            )
    return problems


def _task_problems(resource: TaskQueue, index: int, task: TaskSpec) -> list[str]:
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
        if not task_slug(task.name):
            problems.append(
                f"spec.tasks.{index}.name {task.name!r}: a scheduled task's name needs a letter "
                "or a digit: its CronJob is named <metadata.name>-<the letters, digits and "
                "dashes of the task name>"
            )
        problems.extend(_payload_problems(index, task))
    if task.payload is not None and task.schedule is None:
        problems.append(f"task {task.name!r} has a payload but no schedule to send it on")
    return problems


def _payload_problems(index: int, task: TaskSpec) -> list[str]:
    """The CronJob sends the payload's JSON as one SQS message."""
    where = f"spec.tasks.{index}.payload of task {task.name!r}"
    try:
        body = payload_body(task.payload)
    except (TypeError, ValueError) as error:  # only from Python callers: YAML and JSON load
        return [f"{where} is not JSON: {error}"]
    size = len(body.encode())
    if size <= MAX_SCHEDULED_PAYLOAD_BYTES:
        return []
    return [
        f"{where} is {size} bytes as JSON; a scheduled message may be at most "
        f"{MAX_SCHEDULED_PAYLOAD_BYTES} bytes (SQS's {MAX_SQS_MESSAGE_BYTES}, less room for "
        "its JobName and TraceId attributes)"
    ]


def _processor_problems(resource: TaskQueue, index: int, processor: ProcessorSpec) -> list[str]:
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
            f"processor {processor.name!r} (spec.processors.{index}.name): the Deployment name "
            f"{deployment!r} (metadata.name-processor) is {len(deployment)} characters, longer "
            f"than {MAX_OBJECT_NAME}"
        )
    problems.extend(_autoscaling_problems(resource, processor))
    problems.extend(_env_problems(resource, processor))
    return problems


def _autoscaling_problems(resource: TaskQueue, processor: ProcessorSpec) -> list[str]:
    """Settings that contradict each other, named (the CRD's rules say the same for the first
    two, the others need the spec as a whole)."""
    scaling = processor.autoscaling
    if scaling is None:
        return []
    where = f"processor {processor.name!r}"
    problems = []
    if scaling.min_replicas > scaling.max_replicas:
        problems.append(
            f"{where}: autoscaling.minReplicas ({scaling.min_replicas}) exceeds maxReplicas "
            f"({scaling.max_replicas})"
        )
    if not scaling.queue_driven:
        if not scaling.external and scaling.min_replicas < 1:
            problems.append(f"{where}: autoscaling.minReplicas is 0: {SCALE_TO_ZERO}")
        problems.extend(
            f"{where}: autoscaling.{field} is a setting of queue-driven autoscaling: set "
            "autoscaling.queueLength too"
            for field, value in (
                ("targetMessageAgeSeconds", scaling.target_message_age),
                ("queues", scaling.queues),
            )
            if value is not None
        )
        return problems
    if scaling.external or scaling.target_cpu_utilization is not None:
        problems.append(
            f"{where}: autoscaling.queueLength (queue depth, KEDA) excludes "
            + ("external" if scaling.external else "targetCPUUtilizationPercentage")
            + ": choose one autoscaler"
        )
    if processor.replicas != DEFAULT_REPLICAS:
        problems.append(
            f"{where}: replicas {processor.replicas} has no effect with autoscaling.queueLength "
            f"(KEDA sets the count between minReplicas {scaling.min_replicas} and maxReplicas "
            f"{scaling.max_replicas}); remove it"
        )
    endpoint = resource.spec.sqs.endpoint
    if (
        scaling.target_message_age is not None
        and endpoint is not None
        and normalise(region=None, endpoint=endpoint, name="").endpoint != "aws"
    ):
        problems.append(
            f"{where}: autoscaling.targetMessageAgeSeconds reads SQS's CloudWatch metric "
            "ApproximateAgeOfOldestMessage, which only AWS has; spec.sqs.endpoint "
            f"{resource.spec.sqs.endpoint!r} is another service (scale on queueLength alone)"
        )
    polled = _polled(resource, processor)
    for queue in dict.fromkeys(scaling.queues or []):
        if queue not in polled:
            problems.append(
                f"{where}: autoscaling.queues names {queue!r}, which it does not poll (it polls "
                f"{', '.join(sorted(polled)) or 'no queue'}): its depth says nothing of this "
                "processor's work"
            )
    return problems


def _polled(resource: TaskQueue, processor: ProcessorSpec) -> set[str]:
    queues = {task.name: task.queue for task in resource.spec.tasks}
    return {queues[name] for name in processor.tasks if name in queues}


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


def validate_all(resources: Iterable[TaskQueue], *, seen_from: str | None = None) -> list[Problem]:
    """Every rule, within each resource and across them (no shared physical queue).

    `seen_from`: the namespace whose tenant reads the messages (in a cluster): TaskQueues of
    other namespaces are then not named, as that tenant may have no right to see them."""
    resources = list(resources)
    problems = [problem for resource in resources for problem in validate_one(resource)]
    # The same identities as the claim index: endpoint aliases of one queue are one queue.
    claims: dict[QueueIdentity, list[str]] = defaultdict(list)
    for resource in resources:
        for identity in identities(resource):
            if resource.key not in claims[identity]:
                claims[identity].append(resource.key)
    for identity, owners in sorted(claims.items()):
        if len(owners) > 1:
            for owner in owners:
                others = ", ".join(_shown(o, seen_from) for o in owners if o != owner)
                problems.append(
                    Problem(
                        resource=owner,
                        message=f"{identity} is also declared by {others}; a "
                        "physical queue belongs to one resource",
                    )
                )
    return problems


def validate_against(resource: TaskQueue, others: Iterable[TaskQueue]) -> list[Problem]:
    """Problems of `resource` alone, checked against the other resources of the cluster."""
    peers = [other for other in others if other.key != resource.key]
    return [
        p
        for p in validate_all([resource, *peers], seen_from=resource.namespace)
        if p.resource == resource.key
    ]


def _shown(key: str, seen_from: str | None) -> str:
    if seen_from is None or key.split("/", 1)[0] == seen_from:
        return f"TaskQueue {key}"
    return "a TaskQueue in another namespace"


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
