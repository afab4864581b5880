"""Names and labels of what a TaskQueue creates: SQS queues and Kubernetes objects."""

from __future__ import annotations

import hashlib
import re

from kube_taskqueue_operator.resource.models import TaskQueue

DEAD_LETTER_SUFFIX = "-dlq"
FIFO_SUFFIX = ".fifo"
#: CronJob names are limited to 52 characters (the Job controller appends a suffix).
MAX_CRONJOB_NAME = 52

LABEL_TASKQUEUE = "taskqueue.dev/taskqueue"
LABEL_PROCESSOR = "taskqueue.dev/processor"
LABEL_TASK = "taskqueue.dev/task"
#: Owner tag on SQS queues: `<namespace>/<name>` of the TaskQueue.
TAG_OWNER = "taskqueue.dev/owner"
TAG_OWNER_UID = "taskqueue.dev/owner-uid"

#: Environment variables the operator sets on processor and CronJob containers (a processor's
#: own `env` may not repeat them: server-side apply refuses a duplicate name).
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: The name of the Job a CronJob started (downward API): the deduplication id of a FIFO send.
JOB_NAME_ENV = "TASKQUEUE_JOB_NAME"


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
