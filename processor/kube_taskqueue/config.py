"""The processor's configuration file: one validated tree, the contract the operator renders.

Field names are camelCase in YAML (as in the seed's poll settings); durations are seconds.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml
from pydantic import ConfigDict, Field

from kube_taskqueue.sqs import MAX_BATCH, MAX_VISIBILITY_SECONDS, MAX_WAIT_SECONDS


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the field."""


class _Model(pydantic.BaseModel):
    # Attribute docstrings are the fields' descriptions (the generated configuration reference).
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, use_attribute_docstrings=True
    )


class QueueSettings(_Model):
    """How one queue is polled, held and retried."""

    poll_interval: Annotated[float, Field(alias="pollInterval", gt=0, le=3600)] = 10
    """Longest time the queue goes unpolled, in whole seconds. It is the long-poll wait (at
    most SQS's 20 s), so an idle queue costs one receive per interval and a busy one is polled
    again as soon as workers are free. SQS takes the wait in whole seconds, so a fraction is
    refused (0.5 would be a wait of 0: polling without pause)."""

    message_visibility_timeout: Annotated[
        int, Field(alias="messageVisibilityTimeout", ge=2, le=MAX_VISIBILITY_SECONDS)
    ] = 30
    """The window, in seconds, a processor holds a received message. It is renewed at half
    the window while the task runs, so a crashed processor's messages return within one
    window and a long task is never handed to a second worker."""

    max_batch_size: Annotated[int, Field(alias="maxBatchSize", ge=1, le=MAX_BATCH)] = MAX_BATCH
    """Most messages one receive takes (SQS allows 10); fewer when fewer workers are free."""

    url: str | None = None
    """The queue's URL; when absent it is looked up by `sqs.queuePrefix` + the queue name."""

    retry_backoff_initial: Annotated[
        int, Field(alias="retryBackoffInitial", ge=0, le=MAX_VISIBILITY_SECONDS)
    ] = 5
    """Whole seconds a failed message stays hidden after its first failure; doubles each
    time. The delay is a visibility timeout, which SQS counts in whole seconds, so a fraction
    is refused rather than cut (0.5 would retry at once)."""

    retry_backoff_max: Annotated[
        int, Field(alias="retryBackoffMax", ge=0, le=MAX_VISIBILITY_SECONDS)
    ] = 900
    """Cap of the retry backoff, in whole seconds (SQS allows up to 12 hours)."""

    unknown_task_delay: Annotated[
        int, Field(alias="unknownTaskDelay", ge=0, le=MAX_VISIBILITY_SECONDS)
    ] = 300
    """Whole seconds a message for a task this processor does not run stays hidden before it
    is received again. Longer than a failure's first retry: during a rollout that adds a task,
    old pods receive its messages before the new ones run it, and each receive counts towards
    the dead-letter queue's maxReceiveCount (5 receives at 300 s: 20 minutes and more)."""

    @pydantic.field_validator(
        "poll_interval",
        "retry_backoff_initial",
        "retry_backoff_max",
        "unknown_task_delay",
        mode="before",
    )
    @classmethod
    def _whole_seconds(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        # Before pydantic's own check, whose message ("fractional part") says nothing of why.
        if isinstance(value, float) and not value.is_integer():
            what = (
                "the long-poll wait (WaitTimeSeconds)"
                if info.field_name == "poll_interval"
                else "a retry delay (the message's VisibilityTimeout)"
            )
            raise ValueError(
                f"{value} is not a whole number of seconds: SQS counts {what} in whole "
                f"seconds (use {math.ceil(value)})"
            )
        return value

    @pydantic.model_validator(mode="after")
    def _backoff_order(self) -> QueueSettings:
        # Both given, as the operator's rule: the initial delay would be silently capped.
        given = {"retry_backoff_initial", "retry_backoff_max"} <= self.model_fields_set
        if given and self.retry_backoff_initial > self.retry_backoff_max:
            raise ValueError(
                f"retryBackoffInitial ({self.retry_backoff_initial}) must not exceed "
                f"retryBackoffMax ({self.retry_backoff_max}): every retry would wait "
                "retryBackoffMax"
            )
        return self

    @property
    def wait_seconds(self) -> int:
        return int(min(self.poll_interval, MAX_WAIT_SECONDS))


class SqsSettings(_Model):
    """Where SQS is. Credentials are never here: they come from the standard AWS chain."""

    region: str = "us-east-1"
    """AWS region of the queues (and of the endpoint's request signing)."""
    endpoint: str | None = None
    """An SQS-compatible service's URL (`http://127.0.0.1:9324`); absent means AWS's."""
    queue_prefix: Annotated[str, Field(alias="queuePrefix")] = ""
    """Prefix of every physical queue name, e.g. `dev-` per environment."""
    call_timeout: Annotated[float, Field(alias="callTimeout", gt=0, le=120)] = 10
    """Seconds to connect, and to wait for an answer beyond a long poll's own wait."""

    # Checked here because boto3 refuses both only when a client is built, with a traceback.
    @pydantic.field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", value):
            raise ValueError(f"{value!r} is not a region name such as eu-west-1")
        return value

    @pydantic.field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not a URL such as http://127.0.0.1:9324")
        return value


class HttpSettings(_Model):
    """The health and metrics endpoint."""

    host: str = "0.0.0.0"
    """Address of `/healthz` and `/metrics`."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """0 picks a free port (tests); the chosen port is logged."""


class TaskLimits(_Model):
    """Limits of one task in this processor (they replace the task's own)."""

    max_concurrency: Annotated[int | None, Field(alias="maxConcurrency", ge=1, le=1024)] = None
    """Runs of the task at once, at most."""
    rate_limit: Annotated[float | None, Field(alias="rateLimit", gt=0, le=100_000)] = None
    """Runs of the task started per second, at most."""


class ProcessorConfig(_Model):
    """A processor's configuration file (`kube-taskqueue run --config FILE`); the operator
    renders one per processor into a ConfigMap."""

    app: Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")]
    """Import path of the provider: `package.module:attribute`."""

    processor: Annotated[str, Field(min_length=1)] = "default"
    """This processor's name, in log lines and metrics."""
    tasks: list[str] | None = None
    """This processor's task set; absent means every task of the provider."""

    workers: Annotated[int, Field(ge=1, le=1024)] = 8
    """Tasks run at once (worker threads; an `async def` task runs on its worker's loop)."""
    shutdown_timeout: Annotated[float, Field(alias="shutdownTimeout", ge=0, le=86_400)] = 30
    """Seconds in-flight tasks get to finish after SIGTERM."""

    stall_timeout: Annotated[float, Field(alias="stallTimeout", gt=0, le=86_400)] = 120
    """Seconds a poller, the acker or the visibility heartbeat may go without progress before
    `/healthz` reports it stuck (the heartbeat also by the shortest visibility window)."""

    log_level: Annotated[str, Field(alias="logLevel", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = (
        "INFO"
    )
    """Lowest level logged: DEBUG adds a line per successful task and tracebacks."""
    sqs: SqsSettings = SqsSettings()
    """Where SQS is: region, endpoint, queue prefix, call timeout."""
    http: HttpSettings = HttpSettings()
    """Where `/healthz` and `/metrics` listen."""
    queues: dict[str, QueueSettings] = {}
    """Settings per logical queue. A queue polled without an entry gets the defaults; an
    entry for a queue no task of the app uses is refused when the processor starts (a
    misspelt name would otherwise leave the real queue on the defaults)."""

    task_limits: Annotated[dict[str, TaskLimits], Field(alias="taskLimits")] = {}
    """Concurrency and rate limits per task name, over the tasks' own `max_concurrency` and
    `rate_limit`; a name no task of the processor has is refused when it starts."""

    def queue_settings(self, queue: str) -> QueueSettings:
        """The settings of a logical queue: its entry in `queues`, else the defaults."""
        return self.queues.get(queue) or QueueSettings()

    def physical_name(self, queue: str) -> str:
        """The SQS queue name of a logical queue: `sqs.queuePrefix` + the name."""
        return self.sqs.queue_prefix + queue


def parse_config(data: Any, *, source: str) -> ProcessorConfig:
    """Validate a loaded document; errors name the source and every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {_kind(data)}")
    try:
        return ProcessorConfig.model_validate(data)
    except pydantic.ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: "
            + item["msg"].removeprefix("Value error, ")
            for item in error.errors()
        ]
        raise ConfigError(f"{source}: invalid configuration: " + "; ".join(problems)) from None


def load_config(path: str | Path) -> ProcessorConfig:
    """Read and validate a YAML configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(data, source=str(path))


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
