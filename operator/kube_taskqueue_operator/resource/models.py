"""The `TaskQueue` resource as pydantic models: the single source of truth for the CRD schema,
the validation, the rendering and the operator.

Attribute docstrings become the CRD's field descriptions (`kubectl explain taskqueue.spec`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field

GROUP = "taskqueue.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TaskQueue"
PLURAL = "taskqueues"
SINGULAR = "taskqueue"
SHORT_NAMES = ["tq"]

#: A Kubernetes DNS label (RFC 1123), as Deployment and ConfigMap names are built from it.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: SQS queue names: letters, digits, `-` and `_`; FIFO queues end in `.fifo`.
QUEUE_NAME = r"^[A-Za-z0-9_-]+(\.fifo)?$"
TASK_NAME = r"^[A-Za-z0-9_.:/-]+$"
#: A Kubernetes resource quantity such as `500m` or `1Gi`.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"

# Bounds on list sizes keep the CEL rules' estimated cost within the API server's budget.
MAX_QUEUES = 50
MAX_TASKS = 100
MAX_PROCESSORS = 20

TaskName = Annotated[str, Field(pattern=TASK_NAME, min_length=1, max_length=80)]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME, min_length=1, max_length=75)]


def _rules(*rules: tuple[str, str, str]) -> dict[str, Any]:
    """CEL rules the API server checks on its own (`x-kubernetes-validations`), each as
    (rule, message, messageExpression).

    The messageExpression names the culprit (queue, task, processor) as the webhook does, so
    a cluster without the webhook still says what to fix; the static message is the API
    server's fallback should the expression fail at run time.
    """
    return {
        "x-kubernetes-validations": [
            {"rule": rule, "message": message, "messageExpression": expression}
            for rule, message, expression in rules
        ]
    }


def _cel_text(template: str) -> str:
    """A CEL string expression from text with CEL expressions in braces:
    `queue '{self.name}' is FIFO` becomes `"queue '" + self.name + "' is FIFO"`.

    Only values with a known size go in the braces (schema fields with a maxLength, or names
    mapped out of a list before filtering): the API server refuses a CRD whose message could
    be unboundedly costly to build, and `string(int)`, `join` or a filtered object's field
    have no bound it can see.
    """
    parts = re.split(r"\{([^{}]*)\}", template)
    pieces = [
        part if index % 2 else json.dumps(part)
        for index, part in enumerate(parts)
        if part or index % 2
    ]
    return " + ".join(pieces)


def _first_duplicate(field: str) -> str:
    """CEL for the first name declared twice in `self.<field>`. Mapping to names before
    filtering keeps their maxLength, which the API server's cost estimate needs."""
    return (
        f"self.{field}.map(x, self.{field}.exists_one(y, y.name == x.name) ? '' : x.name)"
        ".filter(n, n != '')[0]"
    )


#: Pods of a processor that sets no replicas (and what the API server fills in).
DEFAULT_REPLICAS = 1

#: Why `autoscaling.minReplicas: 0` is refused for CPU autoscaling (by the API server and by
#: validation alike).
SCALE_TO_ZERO = (
    "scale-to-zero needs queue-driven autoscaling (set autoscaling.queueLength: KEDA scales on "
    "queue depth, to 0 and back); the CPU HorizontalPodAutoscaler keeps at least 1 pod. Set "
    "minReplicas to 1 or more, queueLength, or external: true when another autoscaler owns "
    "the replica count"
)


class _Model(pydantic.BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        use_attribute_docstrings=True,
        frozen=True,
    )


class DeadLetterSpec(_Model):
    """The queue's dead-letter queue, named `<queue>-dlq` (`<queue>-dlq.fifo` for FIFO)."""

    max_receive_count: Annotated[int, Field(alias="maxReceiveCount", ge=1, le=1000)] = 5
    """Receives after which a message moves to the dead-letter queue."""

    message_retention_period: Annotated[
        int, Field(alias="messageRetentionPeriod", ge=60, le=1_209_600)
    ] = 1_209_600
    """Seconds the dead-letter queue keeps a message (default and maximum: 14 days)."""


class QueueSpec(_Model):
    """One SQS queue: its poll settings, SQS attributes and dead-letter queue."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.contentBasedDeduplication) || self.name.endsWith('.fifo')",
                "contentBasedDeduplication is only for FIFO queues (names ending in .fifo)",
                _cel_text(
                    "queue '{self.name}': contentBasedDeduplication is only for FIFO queues "
                    "(names ending in .fifo)"
                ),
            ),
            (
                "!has(self.retryBackoffInitial) || !has(self.retryBackoffMax) "
                "|| self.retryBackoffInitial <= self.retryBackoffMax",
                "retryBackoffInitial must not exceed retryBackoffMax",
                # No numbers in the message: string(int) has no size bound for the API
                # server's cost estimate.
                _cel_text(
                    "queue '{self.name}': retryBackoffInitial must not exceed retryBackoffMax"
                ),
            ),
        )
    )

    name: QueueName
    """Logical queue name; the SQS name is `sqs.queuePrefix` + this."""

    poll_interval: Annotated[int, Field(alias="pollInterval", ge=1, le=3600)] = 10
    """Longest time in seconds the queue goes unpolled (the long-poll wait, at most 20)."""

    message_visibility_timeout: Annotated[
        int, Field(alias="messageVisibilityTimeout", ge=2, le=43_200)
    ] = 30
    """Seconds a processor holds a message; renewed at half this while its task runs."""

    max_batch_size: Annotated[int, Field(alias="maxBatchSize", ge=1, le=10)] = 10
    """Most messages one poll takes (SQS allows 10)."""

    retry_backoff_initial: Annotated[
        int | None, Field(alias="retryBackoffInitial", ge=0, le=43_200)
    ] = None
    """Seconds a failed message stays hidden after its first failure (doubles after each)."""

    retry_backoff_max: Annotated[int | None, Field(alias="retryBackoffMax", ge=0, le=43_200)] = None
    """Cap of the retry backoff in seconds."""

    unknown_task_delay: Annotated[int | None, Field(alias="unknownTaskDelay", ge=0, le=43_200)] = (
        None
    )
    """Seconds a message for a task its processor does not run stays hidden before the next
    receive (default 300): longer than a failure's retry, so messages of a task added with a
    new image wait out the rollout's old pods instead of reaching the dead-letter queue."""

    message_retention_period: Annotated[
        int | None, Field(alias="messageRetentionPeriod", ge=60, le=1_209_600)
    ] = None
    """SQS MessageRetentionPeriod in seconds (SQS default: 4 days)."""

    delay_seconds: Annotated[int | None, Field(alias="delaySeconds", ge=0, le=900)] = None
    """SQS DelaySeconds: how long new messages stay invisible."""

    content_based_deduplication: Annotated[
        bool | None, Field(alias="contentBasedDeduplication")
    ] = None
    """FIFO queues only: deduplicate by a hash of the body."""

    tags: Annotated[dict[str, str] | None, Field(max_length=40)] = None
    """Extra SQS tags (the operator adds its ownership tags)."""

    dead_letter: Annotated[DeadLetterSpec | None, Field(alias="deadLetter")] = None
    """When set, a dead-letter queue is created and set as the redrive target."""

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")


class TaskSpec(_Model):
    """One task of the app: the queue its messages go to, and an optional schedule."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.payload) || has(self.schedule)",
                "payload is only sent on a schedule",
                _cel_text("task '{self.name}' has a payload but no schedule to send it on"),
            ),
        )
    )

    name: TaskName
    """The task's name in the app's provider (the `JobName` of its messages)."""

    queue: QueueName
    """One of `spec.queues[].name`."""

    schedule: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    """Cron schedule (five fields); a CronJob enqueues the task with `payload`."""

    payload: dict[str, Any] | None = None
    """Payload sent on schedule (a JSON object)."""


class AutoscalingSpec(_Model):
    """Scaling of one processor. When set, the operator leaves `replicas` alone (it is never
    among the fields it applies). Three modes: on queue depth with KEDA (`queueLength` set), on
    CPU with a HorizontalPodAutoscaler (the default), or by another autoscaler (`external`)."""

    min_replicas: Annotated[int, Field(alias="minReplicas", ge=0, le=1000)] = 1
    """Fewest pods; 0 (scale to zero) with `queueLength` or `external` only."""
    max_replicas: Annotated[int, Field(alias="maxReplicas", ge=1, le=1000)] = 10
    """Most pods the autoscaler may run."""
    target_cpu_utilization: Annotated[
        int | None, Field(alias="targetCPUUtilizationPercentage", ge=1, le=100)
    ] = None
    """CPU target of the HorizontalPodAutoscaler the operator creates (default 80)."""

    external: bool = False
    """True when another autoscaler owns the replica count: the operator then creates no
    autoscaler and never sets replicas."""

    queue_length: Annotated[int | None, Field(alias="queueLength", ge=1, le=1_000_000)] = None
    """Messages per pod: scale on queue depth. The operator creates a KEDA ScaledObject with
    one `aws-sqs-queue` trigger per queue the processor polls (KEDA must be installed) and a
    TriggerAuthentication from the TaskQueue's credentials."""

    activation_queue_length: Annotated[
        int, Field(alias="activationQueueLength", ge=0, le=1_000_000)
    ] = 0
    """Messages above which a processor at zero pods is started (KEDA's activation)."""

    scale_on_in_flight: Annotated[bool, Field(alias="scaleOnInFlight")] = True
    """Count messages being processed (in flight) as well as waiting ones, so pods busy with
    long tasks are not scaled in under them."""

    scale_on_delayed: Annotated[bool, Field(alias="scaleOnDelayed")] = False
    """Count delayed messages (DelaySeconds, retries are not delayed) too."""

    target_message_age: Annotated[
        int | None, Field(alias="targetMessageAgeSeconds", ge=1, le=1_209_600)
    ] = None
    """Also scale on the age of each queue's oldest message (SQS's CloudWatch metric
    ApproximateAgeOfOldestMessage, through KEDA's aws-cloudwatch trigger; AWS only): seconds
    of age one pod should keep up with. KEDA runs the larger count of the two signals."""

    queues: Annotated[list[QueueName] | None, Field(max_length=MAX_QUEUES)] = None
    """Queues whose depth drives the scaling (default: every queue the processor polls)."""

    polling_interval: Annotated[int, Field(alias="pollingInterval", ge=1, le=3600)] = 30
    """Seconds between KEDA's checks of the queue depth."""

    cooldown_period: Annotated[int, Field(alias="cooldownPeriod", ge=0, le=86_400)] = 300
    """Seconds after the last activity before scaling to `minReplicas` 0 (KEDA)."""

    scale_down_stabilization: Annotated[
        int, Field(alias="scaleDownStabilizationSeconds", ge=0, le=3600)
    ] = 300
    """Seconds of lower demand before pods are removed (the HorizontalPodAutoscaler's
    scale-down stabilization window), so a burst's gaps do not stop pods mid-work."""

    @property
    def queue_driven(self) -> bool:
        return self.queue_length is not None


class ResourceList(_Model):
    """CPU and memory quantities, as in a container's resources."""

    cpu: Annotated[str | None, Field(pattern=QUANTITY)] = None
    """CPU quantity, e.g. `250m` or `1`."""
    memory: Annotated[str | None, Field(pattern=QUANTITY)] = None
    """Memory quantity, e.g. `256Mi`."""


class Resources(_Model):
    """Container resources of the processor pods."""

    requests: ResourceList | None = None
    """What the scheduler reserves per pod (and the CPU autoscaler's 100 %)."""
    limits: ResourceList | None = None
    """The most a pod may use; over the memory limit it is killed."""


class EnvVar(_Model):
    """One environment variable of the processor container."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    """Variable name (letters, digits, `_`; not starting with a digit)."""
    value: Annotated[str, Field(max_length=4096)] = ""
    """Its value, as a literal string."""


class ProcessorSpec(_Model):
    """One processor Deployment and the tasks it runs."""

    # The autoscaling rules sit here, not on AutoscalingSpec, so that they can name the
    # processor.
    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "!has(self.autoscaling) "
                "|| self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",
                "minReplicas must not exceed maxReplicas",
                _cel_text(
                    "processor '{self.name}': autoscaling.minReplicas must not exceed "
                    "autoscaling.maxReplicas"
                ),
            ),
            (
                "!has(self.autoscaling) || self.autoscaling.external "
                "|| has(self.autoscaling.queueLength) || self.autoscaling.minReplicas >= 1",
                f"autoscaling.minReplicas is 0: {SCALE_TO_ZERO}",
                _cel_text(
                    f"processor '{{self.name}}': autoscaling.minReplicas is 0: {SCALE_TO_ZERO}"
                ),
            ),
            (
                "!has(self.autoscaling) || !has(self.autoscaling.queueLength) "
                "|| (!self.autoscaling.external "
                "&& !has(self.autoscaling.targetCPUUtilizationPercentage))",
                "autoscaling.queueLength (queue depth, KEDA) excludes external and "
                "targetCPUUtilizationPercentage",
                _cel_text(
                    "processor '{self.name}': autoscaling.queueLength (queue depth, KEDA) "
                    "excludes external and targetCPUUtilizationPercentage: choose one autoscaler"
                ),
            ),
        )
    )

    name: Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=40)]
    """Processor name; the Deployment is `<TaskQueue name>-<processor name>`."""

    tasks: Annotated[list[TaskName], Field(min_length=1, max_length=MAX_TASKS)]
    """Names of the tasks it runs; every task of a queue it polls must be here."""

    replicas: Annotated[int, Field(ge=0, le=1000)] = DEFAULT_REPLICAS
    """Pods, unless `autoscaling` is set."""

    workers: Annotated[int, Field(ge=1, le=1024)] = 8
    """Worker threads per pod."""

    shutdown_timeout: Annotated[int, Field(alias="shutdownTimeout", ge=0, le=86_400)] = 30
    """Seconds running tasks get after SIGTERM; the pod's grace period covers it."""

    resources: Resources | None = None
    """CPU and memory requests and limits of each pod."""
    autoscaling: AutoscalingSpec | None = None
    """Scale the replicas instead of a fixed `replicas`: on CPU, on queue depth (KEDA), or by
    another autoscaler."""
    env: Annotated[list[EnvVar] | None, Field(max_length=100)] = None
    """Extra environment variables of the processor container."""


class SqsSpec(_Model):
    """Where the queues live. Credentials are never inline."""

    region: Annotated[str | None, Field(pattern=r"^[a-z0-9-]+$", min_length=1, max_length=32)] = (
        None
    )
    """AWS region; absent means the operator's default (its --default-region)."""

    endpoint: Annotated[str | None, Field(pattern=r"^https?://", max_length=255)] = None
    """URL of an SQS-compatible service; absent means the operator's default, else AWS."""

    queue_prefix: Annotated[
        str, Field(alias="queuePrefix", pattern=r"^[A-Za-z0-9_-]*$", max_length=40)
    ] = ""
    """Prefix of every SQS queue name, e.g. per environment; empty means the operator's
    default prefix."""

    credentials_secret: Annotated[
        str | None, Field(alias="credentialsSecret", pattern=DNS_LABEL, max_length=63)
    ] = None
    """Secret in this namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
    optionally AWS_SESSION_TOKEN); absent means the pod's identity (e.g. an IAM role)."""


class TaskQueueSpec(_Model):
    """Queues, tasks and the processors that run them, for one app."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.queues.all(q, self.queues.exists_one(r, r.name == q.name))",
                "queue names must be unique",
                _cel_text(
                    "queue names must be unique: '{" + _first_duplicate("queues") + "}' is "
                    "declared more than once"
                ),
            ),
            (
                "self.tasks.all(t, self.tasks.exists_one(r, r.name == t.name))",
                "task names must be unique",
                _cel_text(
                    "task names must be unique: '{" + _first_duplicate("tasks") + "}' is "
                    "declared more than once"
                ),
            ),
            (
                "self.processors.all(p, self.processors.exists_one(r, r.name == p.name))",
                "processor names must be unique",
                _cel_text(
                    "processor names must be unique: '{" + _first_duplicate("processors") + "}' "
                    "is declared more than once"
                ),
            ),
            (
                "self.tasks.all(t, self.queues.exists(q, q.name == t.queue))",
                "every task's queue must be declared in spec.queues",
                # The first culprit only: a joined list has no size bound the API server's
                # cost estimate accepts.
                "self.tasks.map(t, self.queues.exists(q, q.name == t.queue) ? '' : "
                + _cel_text(
                    "task '{t.name}' uses queue '{t.queue}', which is not declared in spec.queues"
                )
                + ").filter(m, m != '')[0]",
            ),
            (
                "self.processors.all(p, p.tasks.all(n, self.tasks.exists(t, t.name == n)))",
                "processors may only name tasks declared in spec.tasks",
                "self.processors.map(p, p.tasks.filter(n, !self.tasks.exists(t, t.name == n))"
                ".map(n, "
                + _cel_text(
                    "processor '{p.name}' names unknown task '{n}', which is not declared in "
                    "spec.tasks"
                )
                + ")).filter(l, l.size() > 0)[0][0]",
            ),
        )
    )

    image: Annotated[str, Field(min_length=1, max_length=512)]
    """The processor image: the TaskQueue base image plus the app's code."""

    app: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$", max_length=256)]
    """Import path of the app's task provider, `package.module:attribute`."""

    sqs: SqsSpec
    """Where the queues live: region, endpoint, name prefix and credentials."""
    service_account_name: Annotated[
        str | None, Field(alias="serviceAccountName", pattern=DNS_LABEL, max_length=63)
    ] = None
    """Service account of the processor pods (e.g. annotated with an IAM role)."""

    deletion_policy: Annotated[Literal["Retain", "Delete"], Field(alias="deletionPolicy")] = (
        "Retain"
    )
    """What happens to the SQS queues when the TaskQueue is deleted."""

    adopt_existing_queues: Annotated[bool, Field(alias="adoptExistingQueues")] = False
    """Take over queues that already exist without this resource's owner tag."""

    queues: Annotated[list[QueueSpec], Field(min_length=1, max_length=MAX_QUEUES)]
    """The SQS queues the operator creates and keeps in step, each with its poll settings."""
    tasks: Annotated[list[TaskSpec], Field(min_length=1, max_length=MAX_TASKS)]
    """The app's tasks, each on one declared queue."""
    processors: Annotated[list[ProcessorSpec], Field(min_length=1, max_length=MAX_PROCESSORS)]
    """One Deployment each. A queue is never split: all its tasks run in one processor."""


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str
    """Ready, Invalid or Degraded."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str
    """A CamelCase word for programs, e.g. Reconciled, ValidationFailed or PolicyDenied."""
    message: str = ""
    """What happened, for people."""
    last_transition_time: Annotated[str, Field(alias="lastTransitionTime")]
    """When the status last changed (RFC 3339)."""
    observed_generation: Annotated[int | None, Field(alias="observedGeneration")] = None
    """The spec generation the condition was computed from."""


class QueueStatus(_Model):
    """One SQS queue as the operator last saw it."""

    name: str
    """Logical queue name, as in `spec.queues`."""
    processor: str | None = None
    """The processor that polls the queue."""
    url: str | None = None
    """The queue's URL in SQS."""
    arn: str | None = None
    """The queue's ARN."""
    dead_letter_url: Annotated[str | None, Field(alias="deadLetterUrl")] = None
    """URL of its dead-letter queue, when it has one."""
    approximate_messages: Annotated[int | None, Field(alias="approximateMessages")] = None
    """Messages waiting (ApproximateNumberOfMessages), refreshed every status interval."""
    approximate_in_flight: Annotated[int | None, Field(alias="approximateInFlight")] = None
    """Messages received and not yet deleted (ApproximateNumberOfMessagesNotVisible)."""
    approximate_delayed: Annotated[int | None, Field(alias="approximateDelayed")] = None
    """Messages sent with a delay that has not passed yet."""
    approximate_dead_letters: Annotated[int | None, Field(alias="approximateDeadLetters")] = None
    """Messages in the queue's dead-letter queue (visible and in flight)."""


class ProcessorStatus(_Model):
    """One processor Deployment as the operator last saw it."""

    name: str
    """Processor name, as in `spec.processors`."""
    desired_replicas: Annotated[int | None, Field(alias="desiredReplicas")] = None
    """Pods the Deployment asks for (set by `replicas` or the autoscaler)."""
    ready_replicas: Annotated[int | None, Field(alias="readyReplicas")] = None
    """Pods ready to process."""


class TaskQueueStatus(_Model):
    """What the operator observed; it never writes `spec`."""

    observed_generation: Annotated[int | None, Field(alias="observedGeneration")] = None
    """The spec generation the operator last reconciled."""
    queue_count: Annotated[int | None, Field(alias="queueCount")] = None
    """Queues of the spec (a printer column: JSONPath there shows only one list item)."""
    processor_count: Annotated[int | None, Field(alias="processorCount")] = None
    """Processors of the spec (a printer column)."""
    conditions: list[Condition] = []
    """Ready, Invalid and Degraded, each with a reason and a message."""
    queues: list[QueueStatus] = []
    """The spec's queues: URLs and approximate depths."""
    leaving_queues: Annotated[list[QueueStatus], Field(alias="leavingQueues")] = []
    """SQS queues no longer in the spec: released (Retain) or deleted (Delete) once every
    processor Deployment of the new spec is rolled out, so no processor polls them."""
    processors: list[ProcessorStatus] = []
    """The processors' desired and ready pods."""


class Metadata(pydantic.BaseModel):
    """The part of metadata rendering needs; everything else is ignored."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1)]
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None


class TaskQueue(pydantic.BaseModel):
    """A whole TaskQueue object, as read from a file or the API server."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: Annotated[Literal["taskqueue.dev/v1alpha1"], Field(alias="apiVersion")] = (
        "taskqueue.dev/v1alpha1"
    )
    kind: Literal["TaskQueue"] = "TaskQueue"
    metadata: Metadata
    spec: TaskQueueSpec

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.metadata.name}"
