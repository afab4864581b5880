"""Rendering: the Kubernetes objects and SQS queue definitions a TaskQueue turns into.

A pure function of the resource. `kube-taskqueue render` prints its output, and the operator
applies exactly the same objects, so what GitOps reviews is what runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from kube_taskqueue.config import ProcessorConfig

from kube_taskqueue_operator.resource import keda, naming, yamlio
from kube_taskqueue_operator.resource.models import (
    API_VERSION,
    KIND,
    ProcessorSpec,
    TaskQueue,
    TaskSpec,
)

HTTP_PORT = 8080
CONFIG_DIR = "/etc/taskqueue"
CONFIG_FILE = "processor.yaml"
CONFIG_HASH_ANNOTATION = "taskqueue.dev/config-hash"
#: On a processor Deployment: the queues (names in spec.queues) its configuration polls, so
#: the operator can tell from the live object which processor is giving up a queue.
QUEUES_ANNOTATION = "taskqueue.dev/queues"
#: Seconds the pod gets beyond the processor's own shutdown timeout (flush, exit).
GRACE_MARGIN_SECONDS = 15
#: CPU target of the HorizontalPodAutoscaler when the spec names none (percent).
DEFAULT_CPU_TARGET = 80
#: The user the processor image runs as (see processor/Dockerfile).
RUN_AS_USER = 10001
CREDENTIAL_KEYS = naming.CREDENTIAL_ENV
#: The label the Job controller puts on a Job's pods: the Job's name, which a CronJob derives
#: from the scheduled time, so retries of one run share it and two runs never do.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


@dataclasses.dataclass(frozen=True, kw_only=True)
class QueueDefinition:
    """One SQS queue to create, with the attributes it must have."""

    logical: str
    name: str
    attributes: dict[str, str]
    tags: dict[str, str]
    dead_letter: QueueDefinition | None = None
    max_receive_count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "queue": self.logical,
            "name": self.name,
            "attributes": self.attributes,
            "tags": self.tags,
        }
        if self.dead_letter is not None:
            data["deadLetter"] = {
                "name": self.dead_letter.name,
                "maxReceiveCount": self.max_receive_count,
                "attributes": self.dead_letter.attributes,
            }
        return data


def queue_plan(resource: TaskQueue) -> list[QueueDefinition]:
    """The queues to create. The RedrivePolicy is added at reconcile time, once the
    dead-letter queue's ARN is known."""
    plan = []
    for queue in resource.spec.queues:
        tags = {**(queue.tags or {}), naming.TAG_OWNER: resource.key}
        if resource.metadata.uid:
            tags[naming.TAG_OWNER_UID] = resource.metadata.uid
        attributes = {"VisibilityTimeout": str(queue.message_visibility_timeout)}
        if queue.message_retention_period is not None:
            attributes["MessageRetentionPeriod"] = str(queue.message_retention_period)
        if queue.delay_seconds is not None:
            attributes["DelaySeconds"] = str(queue.delay_seconds)
        if queue.fifo:
            attributes["FifoQueue"] = "true"
            if queue.content_based_deduplication is not None:
                attributes["ContentBasedDeduplication"] = str(
                    queue.content_based_deduplication
                ).lower()
        dead_letter = None
        if queue.dead_letter is not None:
            dlq_attributes = {
                "MessageRetentionPeriod": str(queue.dead_letter.message_retention_period)
            }
            if queue.fifo:
                dlq_attributes["FifoQueue"] = "true"
            dead_letter = QueueDefinition(
                logical=f"{queue.name} (dead letters)",
                name=naming.dead_letter_name(resource, queue.name),
                attributes=dlq_attributes,
                tags=tags,
            )
        plan.append(
            QueueDefinition(
                logical=queue.name,
                name=naming.physical_name(resource, queue.name),
                attributes=attributes,
                tags=tags,
                dead_letter=dead_letter,
                max_receive_count=queue.dead_letter.max_receive_count
                if queue.dead_letter
                else None,
            )
        )
    return plan


def processor_config(resource: TaskQueue, processor: ProcessorSpec) -> ProcessorConfig:
    """The processor's `--config`, validated by the processor's own model."""
    spec = resource.spec
    tasks = {task.name: task for task in spec.tasks}
    queue_names = sorted({tasks[name].queue for name in processor.tasks if name in tasks})
    queues: dict[str, Any] = {}
    for queue in spec.queues:
        if queue.name not in queue_names:
            continue
        settings = queue.model_dump(
            by_alias=True,
            exclude_none=True,
            include={
                "poll_interval",
                "message_visibility_timeout",
                "max_batch_size",
                "retry_backoff_initial",
                "retry_backoff_max",
                "unknown_task_delay",
            },
        )
        queues[queue.name] = settings
    sqs: dict[str, Any] = {"queuePrefix": spec.sqs.queue_prefix}
    if spec.sqs.region:
        sqs["region"] = spec.sqs.region
    if spec.sqs.endpoint:
        sqs["endpoint"] = spec.sqs.endpoint
    return ProcessorConfig.model_validate(
        {
            "app": spec.app,
            "processor": processor.name,
            "tasks": list(processor.tasks),
            "workers": processor.workers,
            "shutdownTimeout": processor.shutdown_timeout,
            "sqs": sqs,
            "http": {"port": HTTP_PORT},
            "queues": queues,
        }
    )


def config_text(config: ProcessorConfig) -> str:
    # Only what the resource sets: the processor's own defaults stay its business.
    return yamlio.dump(config.model_dump(by_alias=True, exclude_unset=True))


def render(
    resource: TaskQueue, *, queue_urls: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every object the operator applies for the resource, in apply order. `queue_urls`
    (queue → SQS URL, once the queues exist) go into the KEDA triggers of queue-driven
    processors; offline the queue's SQS name stands in their place."""
    objects: list[dict[str, Any]] = []
    owners = {processor.name: processor for processor in resource.spec.processors}
    task_owner = {name: p.name for p in resource.spec.processors for name in p.tasks}
    texts = {}
    if any(
        p.autoscaling is not None and p.autoscaling.queue_driven for p in resource.spec.processors
    ):
        name = keda.trigger_authentication_name(resource)
        objects.append(
            keda.trigger_authentication(
                resource, metadata=_metadata(resource, name, naming.common_labels(resource))
            )
        )
    for processor in resource.spec.processors:
        config = processor_config(resource, processor)
        texts[processor.name] = text = config_text(config)
        objects.append(_config_map(resource, processor, text))
        polled = sorted(config.queues)
        objects.append(_deployment(resource, processor, text, polled))
        scaling = processor.autoscaling
        if scaling is not None and scaling.queue_driven:
            labels = _processor_labels(resource, processor.name)
            objects.append(
                keda.scaled_object(
                    resource,
                    processor,
                    polled=polled,
                    metadata=_metadata(
                        resource, naming.workload_name(resource, processor.name), labels
                    ),
                    queue_urls=queue_urls,
                )
            )
        elif scaling is not None and not scaling.external:
            objects.append(_autoscaler(resource, processor))
    for task in resource.spec.tasks:
        if task.schedule is not None and task.name in task_owner:
            owner = owners[task_owner[task.name]]
            objects.append(_cronjob(resource, owner, texts[owner.name], task, task.schedule))
    return objects


def polled_queues(deployment: Mapping[str, Any]) -> frozenset[str] | None:
    """The queues a processor Deployment (rendered or live) polls, from its annotation; None
    for a Deployment without one (made by an operator before the annotation existed)."""
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    value = annotations.get(QUEUES_ANNOTATION)
    if value is None:
        return None
    return frozenset(name for name in str(value).split(",") if name)


def render_queue_plan(resource: TaskQueue) -> dict[str, Any]:
    """The queue definitions as a document for review (not a Kubernetes object to apply:
    `kube-taskqueue render --queues` prints it alone)."""
    sqs = resource.spec.sqs
    return {
        "apiVersion": API_VERSION,
        "kind": "QueuePlan",
        "metadata": {"name": resource.metadata.name, "namespace": resource.namespace},
        "sqs": {"region": sqs.region or "", "endpoint": sqs.endpoint or "aws"},
        "deletionPolicy": resource.spec.deletion_policy,
        "queues": [definition.as_dict() for definition in queue_plan(resource)],
    }


def render_text(resource: TaskQueue) -> str:
    """What `kube-taskqueue render` prints for one resource: the queue plan as a comment
    (the operator makes the queues; no API server knows a QueuePlan), then the objects, so the
    output goes straight into `kubectl apply -f -`, kubeconform or a GitOps diff."""
    plan = yamlio.dump(render_queue_plan(resource)).splitlines()
    header = [
        f"# SQS queues of TaskQueue {resource.key}, which the operator creates (not Kubernetes",
        "# objects; `kube-taskqueue render --queues` prints them as YAML):",
        *(f"#   {line}" for line in plan),
    ]
    return "\n".join(header) + "\n" + yamlio.dump_all(render(resource))


# -- objects -------------------------------------------------------------------------------


def _metadata(resource: TaskQueue, name: str, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": resource.namespace,
        "labels": labels,
    }
    if resource.metadata.uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": resource.metadata.name,
                "uid": resource.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return metadata


def _processor_labels(resource: TaskQueue, processor: str) -> dict[str, str]:
    return {
        **naming.common_labels(resource),
        "app.kubernetes.io/component": processor,
        naming.LABEL_PROCESSOR: processor,
    }


def _selector(resource: TaskQueue, processor: str) -> dict[str, str]:
    return {naming.LABEL_TASKQUEUE: resource.metadata.name, naming.LABEL_PROCESSOR: processor}


def _config_map(resource: TaskQueue, processor: ProcessorSpec, text: str) -> dict[str, Any]:
    # Immutable and named by its content: pods of an older ReplicaSet that restart (or a
    # rollback to it) read the configuration of their own revision.
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            resource,
            naming.config_map_name(resource, processor.name, text),
            _processor_labels(resource, processor.name),
        ),
        "immutable": True,
        "data": {CONFIG_FILE: text},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env(resource: TaskQueue, processor: ProcessorSpec | None) -> list[dict[str, Any]]:
    region = resource.spec.sqs.region or ""
    env: list[dict[str, Any]] = [{"name": name, "value": region} for name in naming.REGION_ENV]
    secret = resource.spec.sqs.credentials_secret
    if secret:
        env.extend(
            {
                "name": key,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": secret,
                        "key": key,
                        **({"optional": True} if key == "AWS_SESSION_TOKEN" else {}),
                    }
                },
            }
            for key in CREDENTIAL_KEYS
        )
    if processor is not None:
        env.extend({"name": var.name, "value": var.value} for var in processor.env or [])
    return env


def _volumes(resource: TaskQueue, processor: str, text: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "config",
            "configMap": {"name": naming.config_map_name(resource, processor, text)},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]


_MOUNTS = [
    {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    {"name": "tmp", "mountPath": "/tmp"},
]


def _pod_spec(resource: TaskQueue, processor: str, text: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if resource.spec.service_account_name:
        spec["serviceAccountName"] = resource.spec.service_account_name
    spec.update(
        automountServiceAccountToken=False,
        securityContext=_pod_security(),
        volumes=_volumes(resource, processor, text),
        **fields,
    )
    return spec


def _resources(processor: ProcessorSpec) -> dict[str, Any]:
    if processor.resources is None:
        return {}
    return processor.resources.model_dump(exclude_none=True)


def _deployment(
    resource: TaskQueue, processor: ProcessorSpec, text: str, queues: list[str]
) -> dict[str, Any]:
    labels = _processor_labels(resource, processor.name)
    container = {
        "name": "processor",
        "image": resource.spec.image,
        "command": ["kube-taskqueue", "run", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "env": _env(resource, processor),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
        },
        "resources": _resources(processor),
        "securityContext": _container_security(),
        "volumeMounts": _MOUNTS,
    }
    spec: dict[str, Any] = {}
    if processor.autoscaling is None:
        spec["replicas"] = processor.replicas
    spec.update(
        revisionHistoryLimit=3,
        selector={"matchLabels": _selector(resource, processor.name)},
        template={
            "metadata": {
                "labels": labels,
                "annotations": {
                    CONFIG_HASH_ANNOTATION: hashlib.sha256(text.encode()).hexdigest()[:16],
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(HTTP_PORT),
                },
            },
            "spec": _pod_spec(
                resource,
                processor.name,
                text,
                terminationGracePeriodSeconds=processor.shutdown_timeout + GRACE_MARGIN_SECONDS,
                containers=[container],
            ),
        },
    )
    metadata = _metadata(resource, naming.workload_name(resource, processor.name), labels)
    metadata["annotations"] = {QUEUES_ANNOTATION: ",".join(queues)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def _autoscaler(resource: TaskQueue, processor: ProcessorSpec) -> dict[str, Any]:
    assert processor.autoscaling is not None
    scaling = processor.autoscaling
    name = naming.workload_name(resource, processor.name)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(resource, name, _processor_labels(resource, processor.name)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,  # 0 is refused by validation
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization
                            or DEFAULT_CPU_TARGET,
                        },
                    },
                }
            ],
        },
    }


def _cronjob(
    resource: TaskQueue, processor: ProcessorSpec, text: str, task: TaskSpec, schedule: str
) -> dict[str, Any]:
    labels = {
        **_processor_labels(resource, processor.name),
        naming.LABEL_TASK: naming.task_slug(task.name),
    }
    # `$` doubled: the kubelet expands $(VAR) in a command and turns `$$` into `$`, so the
    # payload arrives exactly as written.
    body = naming.payload_body(task.payload).replace("$", "$$")
    command = ["kube-taskqueue", "enqueue", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"]
    # One argument: a task name starting with a dash is not taken for an option.
    command += [f"--name={task.name}"]
    env = _env(resource, processor)
    if any(queue.fifo for queue in resource.spec.queues if queue.name == task.queue):
        # A FIFO send needs a group and a deduplication id. The Job's name comes from the
        # scheduled time: a retried run is deduplicated, the next run is not.
        command += [f"--group-id={task.name}", f"--deduplication-id=$({naming.JOB_NAME_ENV})"]
        env.append(
            {
                "name": naming.JOB_NAME_ENV,
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}},
            }
        )
    container = {
        "name": "enqueue",
        "image": resource.spec.image,
        "command": [*command, body],
        "env": env,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "securityContext": _container_security(),
        "volumeMounts": _MOUNTS,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(resource, naming.cronjob_name(resource, task.name), labels),
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 3,
                    "activeDeadlineSeconds": 600,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": _pod_spec(
                            resource,
                            processor.name,
                            text,
                            restartPolicy="OnFailure",
                            containers=[container],
                        ),
                    },
                },
            },
        },
    }
