"""What a task is: its name, queue, payload model, process function and the two hooks.

A task is written either as a small `Task` subclass or with `Provider.task` as a decorator
(see `provider.py`). Both end up as a `Task` object that the processor routes to by name.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar, get_type_hints

import pydantic

from kube_taskqueue.sqs import ReceiptHandle

#: Message attribute that routes a message to its task.
JOB_NAME_ATTRIBUTE = "JobName"
#: Message attribute that carries the trace id from the sender into the handler's logs.
TRACE_ID_ATTRIBUTE = "TraceId"
#: Message attribute of a task sent for later than SQS can delay (epoch milliseconds): the
#: processor keeps it out of sight until then (see kube_taskqueue.runtime.deferral).
DUE_AT_ATTRIBUTE = "TaskQueueDueAt"
#: SQS's longest per-message delay (DelaySeconds).
MAX_DELAY_SECONDS = 900

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
    raw_attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The message attributes as SQS returned them (types, binary values), for a copy."""
    group_id: str | None = None
    """The FIFO message group (None on a standard queue)."""

    @property
    def job_name(self) -> str | None:
        return self.attributes.get(JOB_NAME_ATTRIBUTE)

    @property
    def trace_id(self) -> str | None:
        return self.attributes.get(TRACE_ID_ATTRIBUTE)


_cancelled: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "taskqueue_cancelled", default=None
)


def cancelled() -> bool:
    """True once the running task has passed its `timeout_seconds` (a sync task keeps running
    in the background then; a long loop can check this and stop early)."""
    flag = _cancelled.get()
    return flag is not None and flag.is_set()


@contextlib.contextmanager
def cancellable(flag: threading.Event) -> Iterator[None]:
    """Make `flag` what `cancelled()` reads in the block (the processor sets it on timeout)."""
    token = _cancelled.set(flag)
    try:
        yield
    finally:
        _cancelled.reset(token)


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
    with `TimeoutError`. A sync one runs in a thread of its own and fails with `TimeoutError`
    when the time is up; Python cannot stop a thread, so it is left running in the background
    (`cancelled()` turns True for it to check) while the worker goes on with other messages.
    """

    name: ClassVar[str]
    queue: ClassVar[str]
    payload_model: ClassVar[type[pydantic.BaseModel]]
    timeout_seconds: ClassVar[float | None] = None
    max_concurrency: ClassVar[int | None] = None
    """At most this many runs at once in one processor; its further messages go back to the
    queue for a moment (docs: How-to, "Timeouts and limits")."""
    rate_limit: ClassVar[float | None] = None
    """At most this many runs started per second in one processor."""
    group_by: ClassVar[str | None] = None
    """FIFO queues: the payload field whose value is the message group id (messages of one
    group run one at a time, in order). Override `message_group_id` for anything else."""
    deduplicate_by: ClassVar[str | None] = None
    """FIFO queues: the payload field whose value is the deduplication id (SQS drops a
    message with the same id within five minutes)."""

    def message_group_id(self, payload: PayloadT) -> str | None:
        """The FIFO message group of a payload (None: the sender must give one)."""
        return _derived(self.group_by, payload)

    def message_deduplication_id(self, payload: PayloadT) -> str | None:
        """The FIFO deduplication id of a payload (None: the sender's, or content-based)."""
        return _derived(self.deduplicate_by, payload)

    def process(self, payload: PayloadT) -> Awaitable[None] | None:
        """Run the task on a validated payload: a plain method, or `async def`.

        Returning deletes the message; raising hands the error to `handle_error`.
        """
        raise NotImplementedError

    def handle_error(self, error: Exception, message: Message) -> bool:
        """Decide the fate of a failed message: True deletes it, False (default) retries it.

        Retried messages come back after a backoff; after the queue's maxReceiveCount they
        move to its dead-letter queue. `error` is what `process` raised, a `TaskAborted`
        when it raised something that is not an `Exception` (`sys.exit()`, `KeyboardInterrupt`,
        `asyncio.CancelledError`), or a `PayloadError` when the message's body does not fit the
        payload model (then `process` never ran).
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
            raise PayloadError(
                task=self.name, detail=_describe(error), validation_error=error
            ) from error
        return payload  # type: ignore[return-value]

    def validate_payload(self, payload: PayloadT | Mapping[str, Any]) -> PayloadT:
        """Coerce a payload given as a model or a mapping; raises `PayloadError`.

        A mapping's keys must be fields of the model, unless the model sets its own `extra`
        policy: pydantic's default drops unknown keys, so a misspelt one would send the
        field's default without a word. (Received bodies stay lenient, so a sender that
        is one release ahead does not break a processor.)
        """
        if isinstance(payload, self.payload_model):
            return payload
        model = self.payload_model
        problems: list[str] = []
        if not isinstance(payload, pydantic.BaseModel):
            unknown = _unknown_keys(model, payload)
            if unknown:
                problems.append(
                    f"{', '.join(unknown)}: not a field of {model.__name__} (fields: "
                    f"{', '.join(sorted(_accepted_keys(model))) or 'none'}); set "
                    "model_config extra='ignore' on the model to drop unknown keys"
                )
        try:
            data = payload.model_dump() if isinstance(payload, pydantic.BaseModel) else payload
            result = model.model_validate(data)
        except pydantic.ValidationError as error:
            problems.append(_describe(error))
            raise PayloadError(
                task=self.name, detail="; ".join(problems), validation_error=error
            ) from error
        if problems:
            raise PayloadError(task=self.name, detail="; ".join(problems))
        return result  # type: ignore[return-value]

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


def check_field_rules(task: str, model: type[pydantic.BaseModel], **rules: Any) -> None:
    """A `group_by`/`deduplicate_by` naming a field must name one of the payload model's:
    otherwise no message of the task could be sent to its FIFO queue."""
    for option, rule in rules.items():
        if isinstance(rule, str) and rule not in model.model_fields:
            fields = ", ".join(model.model_fields) or "none"
            raise ValueError(
                f"task {task!r}: {option}={rule!r} is not a field of its payload model "
                f"{model.__name__} (fields: {fields})"
            )


def _derived(rule: str | Callable[[Any], Any] | None, payload: Any) -> str | None:
    if rule is None:
        return None
    value = rule(payload) if callable(rule) else getattr(payload, rule)
    return None if value is None else str(value)


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
        max_concurrency: int | None = None,
        rate_limit: float | None = None,
        group_by: str | Callable[[Any], Any] | None = None,
        deduplicate_by: str | Callable[[Any], Any] | None = None,
    ) -> None:
        self._group_by = group_by
        self._deduplicate_by = deduplicate_by
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"task {name!r}: max_concurrency must be at least 1")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError(f"task {name!r}: rate_limit must be more than 0 per second")
        self.max_concurrency = max_concurrency  # type: ignore[misc]
        self.rate_limit = rate_limit  # type: ignore[misc]
        self.function = function
        # Instance attributes shadow the ClassVars: each function task is its own task.
        self.name = name  # type: ignore[misc]
        self.queue = queue  # type: ignore[misc]
        if payload_model is not None:
            _check_annotation(function, payload_model)
        self.payload_model = payload_model or _payload_model_of(function)  # type: ignore[misc]
        self.timeout_seconds = timeout_seconds  # type: ignore[misc]
        check_field_rules(
            name, self.payload_model, group_by=group_by, deduplicate_by=deduplicate_by
        )
        self._handle_error = handle_error
        self._build_message = build_message

    def process(self, payload: Any) -> Awaitable[None] | None:
        return self.function(payload)

    def message_group_id(self, payload: Any) -> str | None:
        return _derived(self._group_by, payload)

    def message_deduplication_id(self, payload: Any) -> str | None:
        return _derived(self._deduplicate_by, payload)

    def handle_error(self, error: Exception, message: Message) -> bool:
        if self._handle_error is None:
            return False
        return self._handle_error(error, message)

    def build_message(self, payload: Any, request: SendRequest) -> SendRequest:
        if self._build_message is None:
            return request
        return self._build_message(payload, request)


class TaskAborted(Exception):
    """A task ended by raising something that is not an `Exception` (`SystemExit`,
    `KeyboardInterrupt`, `asyncio.CancelledError`, `GeneratorExit`...).

    Error handlers take an `Exception`; they get this, with the original as `aborted`
    (and as `__cause__`), and by default the message is retried like any failure.
    """

    def __init__(self, aborted: BaseException) -> None:
        detail = f": {aborted}" if str(aborted) else ""
        super().__init__(f"task raised {type(aborted).__name__}{detail}")
        self.aborted = aborted
        self.__cause__ = aborted


class PayloadError(Exception):
    """A payload that does not fit the task's model (or a body that is not JSON).

    The processor hands a received message's bad payload to the task's `handle_error` as
    this error, and only as this error. It is deliberately not a `ValueError` (pydantic's
    `ValidationError` is one): a handler that deletes on `isinstance(error, ValueError)` for
    its own code's errors must not also delete malformed messages by accident. To delete bad
    payloads, test for `PayloadError`. The pydantic error, when there is one, is
    `validation_error` (and `__cause__`).
    """

    def __init__(
        self,
        *,
        task: str,
        detail: str,
        validation_error: pydantic.ValidationError | None = None,
    ) -> None:
        super().__init__(f"payload of task {task!r} is invalid: {detail}")
        self.task = task
        self.detail = detail
        self.validation_error = validation_error


def encode_payload(payload: pydantic.BaseModel) -> str:
    return payload.model_dump_json()


def _check_annotation(function: Callable[..., Any], model: type[pydantic.BaseModel]) -> None:
    """Refuse `payload_model=` that contradicts the function's own payload annotation."""
    try:
        hints = get_type_hints(function)
    except Exception:  # unresolvable annotations: payload_model= is there to stand in
        return
    parameters = list(inspect.signature(function).parameters)
    annotation = hints.get(parameters[0]) if parameters else None
    if (
        isinstance(annotation, type)
        and issubclass(annotation, pydantic.BaseModel)
        and not issubclass(model, annotation)
    ):
        raise TypeError(
            f"task function {function.__qualname__} takes a {annotation.__name__} but is "
            f"given payload_model={model.__name__}: it would receive {model.__name__} "
            "objects; make them agree (or leave payload_model= out)"
        )


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


def _unknown_keys(model: type[pydantic.BaseModel], data: Mapping[str, Any]) -> list[str]:
    """Keys of `data` the model would drop silently (it has no `extra` policy of its own)."""
    if "extra" in model.model_config:
        return []  # the model chose: "ignore" and "allow" are deliberate, "forbid" reports
    accepted = _accepted_keys(model)
    return sorted(str(key) for key in data if key not in accepted)


def _accepted_keys(model: type[pydantic.BaseModel]) -> set[str]:
    """The top-level keys validation reads: names and aliases, as the model's config says."""
    config = model.model_config
    by_name = bool(config.get("validate_by_name") or config.get("populate_by_name"))
    by_alias = config.get("validate_by_alias", True)
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias if field.validation_alias is not None else field.alias
        if alias is None or by_name:
            keys.add(name)
        if alias is not None and by_alias:
            choices = alias.choices if isinstance(alias, pydantic.AliasChoices) else [alias]
            for choice in choices:
                keys.add(str(choice.path[0]) if isinstance(choice, pydantic.AliasPath) else choice)
    return keys


def _describe(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(body)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
