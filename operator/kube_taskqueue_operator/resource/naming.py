"""Names and labels of what a TaskQueue creates: SQS queues and Kubernetes objects."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from kube_taskqueue_operator.resource.models import TaskQueue

DEAD_LETTER_SUFFIX = "-dlq"
FIFO_SUFFIX = ".fifo"
#: CronJob names are limited to 52 characters (the Job controller appends a suffix).
MAX_CRONJOB_NAME = 52
#: Names of the objects rendered per processor (Deployment, HorizontalPodAutoscaler) are DNS
#: labels: the Deployment's pods and ReplicaSets are named after it.
MAX_OBJECT_NAME = 63
#: The longest label value (the TaskQueue's name, processor names and task slugs are some).
MAX_LABEL_VALUE = 63
#: An RFC 1123 label, as Kubernetes checks object names: ASCII only (use with fullmatch).
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

#: SQS queue names: at most 80 characters, `.fifo` included (letters, digits, `-` and `_`).
MAX_SQS_QUEUE_NAME = 80
#: SQS's largest message (256 KiB): body and message attributes together.
MAX_SQS_MESSAGE_BYTES = 262_144
#: Room kept for the attributes every send carries (JobName with the task name, at most 80
#: characters, and TraceId), counted by SQS against the same limit as the body.
MESSAGE_ATTRIBUTE_ALLOWANCE = 1_024
#: The largest scheduled payload: the JSON the CronJob sends as the message body.
MAX_SCHEDULED_PAYLOAD_BYTES = MAX_SQS_MESSAGE_BYTES - MESSAGE_ATTRIBUTE_ALLOWANCE

LABEL_TASKQUEUE = "taskqueue.dev/taskqueue"
LABEL_PROCESSOR = "taskqueue.dev/processor"
LABEL_TASK = "taskqueue.dev/task"
#: Owner tag on SQS queues: `<namespace>/<name>` of the TaskQueue.
TAG_OWNER = "taskqueue.dev/owner"
TAG_OWNER_UID = "taskqueue.dev/owner-uid"
#: The tags the operator puts on every queue (a queue's own `tags` may not set them).
OPERATOR_TAGS = (TAG_OWNER, TAG_OWNER_UID)
#: SQS's limits on tags: key and value lengths; keys starting `aws:` are AWS's own.
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
AWS_TAG_PREFIX = "aws:"

#: Environment variables the operator sets on processor and CronJob containers (a processor's
#: own `env` may not repeat them: server-side apply refuses a duplicate name).
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: The name of the Job a CronJob started (downward API): the deduplication id of a FIFO send.
JOB_NAME_ENV = "TASKQUEUE_JOB_NAME"
#: Every variable the operator sets itself.
OPERATOR_ENV = (*REGION_ENV, *CREDENTIAL_ENV, JOB_NAME_ENV)


def physical_name(resource: TaskQueue, queue: str) -> str:
    return resource.spec.sqs.queue_prefix + queue


def dead_letter_name(resource: TaskQueue, queue: str) -> str:
    name = physical_name(resource, queue)
    if name.endswith(FIFO_SUFFIX):
        return name[: -len(FIFO_SUFFIX)] + DEAD_LETTER_SUFFIX + FIFO_SUFFIX
    return name + DEAD_LETTER_SUFFIX


def workload_name(resource: TaskQueue, processor: str) -> str:
    """Name of a processor's Deployment and ConfigMap."""
    return f"{resource.metadata.name}-{processor}"


#: Characters of the content hash that ends a processor ConfigMap's name (as Kustomize's
#: configMapGenerator does: a changed configuration is a new ConfigMap, never an edit).
CONFIG_HASH_LENGTH = 10


def config_map_name(resource: TaskQueue, processor: str, text: str) -> str:
    """Name of the immutable ConfigMap holding one revision of a processor's configuration:
    the workload name and a hash of the configuration text, so each Deployment revision (and
    the ReplicaSet a rollback returns to) keeps reading the configuration it was made with."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:CONFIG_HASH_LENGTH]
    return f"{workload_name(resource, processor)}-{digest}"


def task_slug(task: str) -> str:
    """A task name as a DNS label / label value: `partitions_maintenance:job` →
    `partitions-maintenance-job`."""
    return re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")[:63].strip("-")


def payload_body(payload: dict[str, Any] | None) -> str:
    """The message body a scheduled task's CronJob sends: its payload as compact JSON (as
    render.py writes it; NaN and infinities have no JSON and raise ValueError)."""
    return json.dumps(payload or {}, sort_keys=True, separators=(",", ":"), allow_nan=False)


def cronjob_name(resource: TaskQueue, task: str) -> str:
    """A DNS-label name for a scheduled task's CronJob; hashed when it would be too long."""
    name = f"{resource.metadata.name}-{task_slug(task)}"
    if len(name) <= MAX_CRONJOB_NAME:
        return name
    digest = hashlib.sha256(task.encode()).hexdigest()[:8]
    return f"{name[: MAX_CRONJOB_NAME - 9].rstrip('-')}-{digest}"


def common_labels(resource: TaskQueue) -> dict[str, str]:
    # No app.kubernetes.io/instance: it is Argo CD's default tracking label, and an object
    # carrying the Application's name would be pruned by Argo CD as its own.
    return {
        "app.kubernetes.io/name": "kube-taskqueue-processor",
        "app.kubernetes.io/managed-by": "kube-taskqueue-operator",
        LABEL_TASKQUEUE: resource.metadata.name,
    }
