"""TaskQueue: background tasks on SQS queues.

Write tasks with `Task` (a small class) or `Provider.task` (a decorator), send them with a
`Producer`, run them with `kube-taskqueue run --config FILE`.
"""

from kube_taskqueue.assignment import AssignmentError
from kube_taskqueue.config import (
    ConfigError,
    ProcessorConfig,
    QueueSettings,
    SqsSettings,
    load_config,
)
from kube_taskqueue.logs import log_context
from kube_taskqueue.producer import (
    BatchResult,
    DelayError,
    FailedMessage,
    Producer,
    QueueKindError,
    SentMessage,
)
from kube_taskqueue.provider import DuplicateTaskError, Provider
from kube_taskqueue.task import (
    Message,
    PayloadError,
    SendRequest,
    Task,
    TaskAborted,
    cancelled,
    current_message,
)

__all__ = [
    "AssignmentError",
    "BatchResult",
    "ConfigError",
    "DelayError",
    "DuplicateTaskError",
    "FailedMessage",
    "Message",
    "PayloadError",
    "ProcessorConfig",
    "Producer",
    "Provider",
    "QueueKindError",
    "QueueSettings",
    "SendRequest",
    "SentMessage",
    "SqsSettings",
    "Task",
    "TaskAborted",
    "cancelled",
    "current_message",
    "load_config",
    "log_context",
]
