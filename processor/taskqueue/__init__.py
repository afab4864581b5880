"""TaskQueue: background tasks on SQS queues.

Write tasks with `Task` (a small class) or `Provider.task` (a decorator), send them with a
`Producer`, run them with `taskqueue run --config FILE`.
"""

from taskqueue.assignment import AssignmentError
from taskqueue.config import ConfigError, ProcessorConfig, QueueSettings, SqsSettings, load_config
from taskqueue.logs import log_context
from taskqueue.producer import BatchResult, FailedMessage, Producer, SentMessage
from taskqueue.provider import DuplicateTaskError, Provider
from taskqueue.task import Message, PayloadError, SendRequest, Task, current_message

__all__ = [
    "AssignmentError",
    "BatchResult",
    "ConfigError",
    "DuplicateTaskError",
    "FailedMessage",
    "Message",
    "PayloadError",
    "ProcessorConfig",
    "Producer",
    "Provider",
    "QueueSettings",
    "SendRequest",
    "SentMessage",
    "SqsSettings",
    "Task",
    "current_message",
    "load_config",
    "log_context",
]
