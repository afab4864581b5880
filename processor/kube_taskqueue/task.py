"""What a task is: its name, queue, payload model, process function and the two hooks.

A task is written either as a small `Task` subclass or with `Provider.task` as a decorator
(see `provider.py`). Both end up as a `Task` object that the processor routes to by name.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar, get_type_hints

import pydantic

from kube_taskqueue.sqs import ReceiptHandle

#: Message attribute that routes a message to its task.
JOB_NAME_ATTRIBUTE = "JobName"
#: Message attribute that carries the trace id from the sender into the handler's logs.
TRACE_ID_ATTRIBUTE = "TraceId"

PayloadT = TypeVar("PayloadT", bound=pydantic.BaseModel)

_current_message: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "taskqueue_current_message", default=None
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Message:
    """A received SQS message, as a handler and an error handler see it."""

    message_id: str
    receipt_handle: ReceiptHandle
    body: str
    queue: str
    attributes: Mapping[str, str]
    receive_count: int
    sent_at_ms: int | None = None

    @property
    def job_name(self) -> str | None:
        return self.attributes.get(JOB_NAME_ATTRIBUTE)

    @property
    def trace_id(self) -> str | None:
        return self.attributes.get(TRACE_ID_ATTRIBUTE)


def current_message() -> Message | None:
    """The message whose task is running in this context (receive count, trace id…)."""
    return _current_message.get()


@contextlib.contextmanager
def handling(message: Message) -> Iterator[None]:
    """Make `message` the current message for the block (the worker runs a task in it)."""
    token = _current_message.set(message)
    try:
        yield
    finally:
        _current_message.reset(token)


@dataclasses.dataclass(kw_only=True)
class SendRequest:
    """What a task may shape when it is sent; the framework sets queue and routing after."""

    body: str
    delay_seconds: int | None = None
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    group_id: str | None = None
    deduplication_id: str | None = None


class Task(Generic[PayloadT]):
    """Base class of a task. Subclasses set `name`, `queue`, `payload_model`, `process`.

    `timeout_seconds`, when set, bounds one run: an `async` process is cancelled and fails
    with `TimeoutError`; a sync one cannot be interrupted, so the processor reports it as
    hung on `/healthz` and Kubernetes restarts the pod (its message then comes back).
    """

    name: ClassVar[str]
    queue: ClassVar[str]
    payload_model: ClassVar[type[pydantic.BaseModel]]
    timeout_seconds: ClassVar[float | None] = None

    def process(self, payload: PayloadT) -> Awaitable[None] | None:
        raise NotImplementedError

    def handle_error(self, error: Exception, message: Message) -> bool:
        """Decide the fate of a failed message: True deletes it, False (default) retries it.

        Retried messages come back after a backoff; after the queue's maxReceiveCount they
        move to its dead-letter queue.
        """
        return False

    def build_message(self, payload: PayloadT, request: SendRequest) -> SendRequest:
        """Shape the send request (delay, attributes, FIFO ids). The default sends as is."""
        return request

    # -- used by the framework -------------------------------------------------------------

    def parse_payload(self, body: str) -> PayloadT:
        """Parse a message body into the payload model; raises `PayloadError`."""
        try:
            payload = self.payload_model.model_validate_json(body)
        except pydantic.ValidationError as error:
            raise PayloadError(task=self.name, detail=_describe(error)) from error
        return payload  # type: ignore[return-value]

    def validate_payload(self, payload: PayloadT | Mapping[str, Any]) -> PayloadT:
        """Coerce a payload given as a model or a mapping; raises `PayloadError`."""
        if isinstance(payload, self.payload_model):
            return payload
        try:
            data = payload.model_dump() if isinstance(payload, pydantic.BaseModel) else payload
            return self.payload_model.model_validate(data)  # type: ignore[return-value]
        except pydantic.ValidationError as error:
            raise PayloadError(task=self.name, detail=_describe(error)) from error

    @property
    def definition(self) -> str:
        """Where the task is defined, for error messages."""
        target: Any = getattr(self, "function", type(self))
        try:
            path = inspect.getsourcefile(target) or "?"
            line = inspect.getsourcelines(target)[1]
        except (OSError, TypeError):
            return f"{target.__module__}.{target.__qualname__}"
        return f"{target.__module__}.{target.__qualname__} ({path}:{line})"

    def __repr__(self) -> str:
        return f"<Task {self.name!r} on queue {self.queue!r}>"


class FunctionTask(Task[Any]):
    """A task made from a function by the `Provider.task` decorator."""

    def __init__(
        self,
        *,
        function: Callable[[Any], Awaitable[None] | None],
        name: str,
        queue: str,
        payload_model: type[pydantic.BaseModel] | None = None,
        timeout_seconds: float | None = None,
        handle_error: Callable[[Exception, Message], bool] | None = None,
        build_message: Callable[[Any, SendRequest], SendRequest] | None = None,
    ) -> None:
        self.function = function
        # Instance attributes shadow the ClassVars: each function task is its own task.
        self.name = name  # type: ignore[misc]
        self.queue = queue  # type: ignore[misc]
        self.payload_model = payload_model or _payload_model_of(function)  # type: ignore[misc]
        self.timeout_seconds = timeout_seconds  # type: ignore[misc]
        self._handle_error = handle_error
        self._build_message = build_message

    def process(self, payload: Any) -> Awaitable[None] | None:
        return self.function(payload)

    def handle_error(self, error: Exception, message: Message) -> bool:
        if self._handle_error is None:
            return False
        return self._handle_error(error, message)

    def build_message(self, payload: Any, request: SendRequest) -> SendRequest:
        if self._build_message is None:
            return request
        return self._build_message(payload, request)


class PayloadError(ValueError):
    """A payload that does not fit the task's model (or a body that is not JSON)."""

    def __init__(self, *, task: str, detail: str) -> None:
        super().__init__(f"payload of task {task!r} is invalid: {detail}")
        self.task = task
        self.detail = detail


def encode_payload(payload: pydantic.BaseModel) -> str:
    return payload.model_dump_json()


def _payload_model_of(function: Callable[..., Any]) -> type[pydantic.BaseModel]:
    hints = get_type_hints(function)
    parameters = list(inspect.signature(function).parameters)
    model = hints.get(parameters[0]) if parameters else None
    if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        raise TypeError(
            f"task function {function.__qualname__} must take one argument annotated with a "
            "pydantic model (its payload), or the decorator must be given payload_model="
        )
    return model


def _describe(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(body)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
