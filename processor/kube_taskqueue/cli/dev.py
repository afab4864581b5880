"""`kube-taskqueue dev`: the whole thing on one machine, against an embedded SQS (moto's server).

No AWS account, no cluster: it starts the server on a loopback port, creates the queues of the
configuration with their dead-letter queues, runs the processor, sends a few demo messages
(bundled example only) and prints progress when it changes. It prints an enqueue command that
works as printed from another terminal: absolute path of the console script, the dummy
credentials and the import path it needs, and the effective configuration in a temporary
file that is removed on every way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pydantic
import yaml

from kube_taskqueue.assignment import Assignment, resolve
from kube_taskqueue.config import ProcessorConfig, load_config
from kube_taskqueue.logs import setup_logging
from kube_taskqueue.producer import FIFO_SUFFIX, Producer
from kube_taskqueue.provider import Provider
from kube_taskqueue.runtime.app import Processor
from kube_taskqueue.runtime.runner import run_processor
from kube_taskqueue.sqs import describe_error, make_client
from kube_taskqueue.task import Task

BUNDLED_CONFIG = Path(__file__).parents[1] / "examples" / "dev.yaml"
DEAD_LETTER_SUFFIX = "-dlq"
MAX_RECEIVE_COUNT = 3
#: moto accepts any credentials. Dev mode and the command it prints use these, so a
#: developer's real ones are never looked up, used or needed.
DEV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
LOOPBACK = "127.0.0.1"
PROGRESS_INTERVAL_SECONDS = 2.0


class DevError(Exception):
    """Dev mode cannot start as asked; the message says what to change."""


def run_dev(
    *,
    config_path: str | Path | None,
    demo_messages: int,
    duration: float | None,
    sqs_port: int | None,
    http_port: int | None,
    log_level: str | None = None,
) -> int:
    _use_dev_credentials()
    base = load_config(config_path or BUNDLED_CONFIG)
    setup_logging(log_level or base.log_level, json_lines=False)
    # Before the server starts: an app that does not import fails fast, with one line.
    provider, assignment = resolve(base)
    # The demo messages fit the bundled example's tasks only; a user's app gets none.
    bundled = base.app == load_config(BUNDLED_CONFIG).app
    with _signals_unwind(), embedded_sqs(port=sqs_port) as endpoint:
        data = dev_config_data(base, endpoint=endpoint, http_port=http_port)
        config = ProcessorConfig.model_validate(data)
        dead_letters = create_queues(config, assignment.queues)
        with effective_config_file(data) as effective:
            session = _Session(
                config=config,
                provider=provider,
                assignment=assignment,
                dead_letters=dead_letters,
                command=enqueue_command(
                    config=config,
                    provider=provider,
                    assignment=assignment,
                    effective=effective,
                    import_path=None if bundled else _import_path(),
                ),
                demo_messages=demo_messages if bundled else None,
            )
            code = session.run(duration=duration)
    print("stopped", file=sys.stderr, flush=True)
    return code


class _Session:
    """One dev run: the processor, the banner once it listens, demo messages, progress."""

    def __init__(
        self,
        *,
        config: ProcessorConfig,
        provider: Provider,
        assignment: Assignment,
        dead_letters: dict[str, str],
        command: tuple[str, str | None],
        demo_messages: int | None,
    ) -> None:
        self._config = config
        self._provider = provider
        self._assignment = assignment
        self._command = command
        self._demo_messages = demo_messages
        self._progress = Progress(
            config=config, dead_letters=dead_letters, interval=PROGRESS_INTERVAL_SECONDS
        )

    def run(self, *, duration: float | None) -> int:
        stop = threading.Event()
        timer = None
        if duration is not None:
            # A daemon, cancelled on the way out: a failed start must not wait for it.
            timer = threading.Timer(duration, stop.set)
            timer.daemon = True
            timer.start()
        try:
            return run_processor(
                self._config, provider=self._provider, on_started=self._started, stop_event=stop
            )
        finally:
            if timer is not None:
                timer.cancel()
            self._progress.stop()

    def _started(self, processor: Processor) -> None:
        # Printed once the processor listens: only then is its HTTP port known.
        print(self._banner(processor), flush=True)
        if self._demo_messages is not None:
            send_demo_messages(
                self._config, self._provider, self._assignment, count=self._demo_messages
            )
        self._progress.follow(processor)

    def _banner(self, processor: Processor) -> str:
        http = f"http://{LOOPBACK}:{processor.http_port}"
        lines = [
            f"embedded SQS at {self._config.sqs.endpoint}; queues: "
            f"{', '.join(self._assignment.queues)} "
            f"(dead-letter queues after {MAX_RECEIVE_COUNT} receives)",
            f"health and metrics: {http}/healthz {http}/metrics",
            "send a task from another terminal (while this runs):",
            f"  {self._command[0]}",
        ]
        if self._command[1]:
            lines.append(f"  ({self._command[1]})")
        if self._demo_messages is None:
            lines.append("no demo messages: they are for the bundled example app")
        lines.append("Ctrl-C stops (in-flight tasks finish first).")
        return "\n".join(lines)


@contextlib.contextmanager
def embedded_sqs(*, port: int | None = None) -> Iterator[str]:
    """Run moto's server on loopback for the block; yields its endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - an optional extra
    except ImportError:
        raise DevError(
            "kube-taskqueue dev needs the embedded SQS server: pip install 'kube-taskqueue[dev]'"
        ) from None
    if port is not None:
        # moto's server thread exits on a busy port and start() then waits forever.
        _check_port_free(port)
    # Port 0: the server binds a free port itself, so two dev runs never race for one.
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=port or 0, verbose=False)
    server.start()
    try:
        yield f"http://{LOOPBACK}:{server.get_host_and_port()[1]}"
    finally:
        server.stop()


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        # As werkzeug binds: a port left in TIME_WAIT by an earlier run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            raise DevError(
                f"cannot start the embedded SQS on port {port}: {error.strerror}; give "
                "--sqs-port another port, or leave it out to pick a free one"
            ) from None


def dev_config_data(
    base: ProcessorConfig, *, endpoint: str, http_port: int | None
) -> dict[str, Any]:
    """The configuration dev mode runs: the user's, pointed at the embedded SQS."""
    data = base.model_dump(by_alias=True, exclude_none=True)
    data["sqs"]["endpoint"] = endpoint
    # Loopback and a free port unless asked: a second dev run (or anything on 8080) must
    # not clash, and a laptop's metrics are nobody else's business.
    data["http"] = {"host": LOOPBACK, "port": 0 if http_port is None else http_port}
    for settings in data["queues"].values():
        # A configured URL points at a real queue; dev mode's queues are the embedded ones.
        settings.pop("url", None)
    return data


def create_queues(config: ProcessorConfig, queues: tuple[str, ...]) -> dict[str, str]:
    """Create each queue and its dead-letter queue (maxReceiveCount 3); returns DLQ URLs."""
    client: Any = make_client(
        region=config.sqs.region, endpoint=config.sqs.endpoint, call_timeout_seconds=5
    )
    dead_letters = {}
    for queue in queues:
        name = config.physical_name(queue)
        try:
            dead_letters[queue] = _create_queue(client, config, queue=queue, name=name)
        except botocore.exceptions.ClientError as error:
            raise DevError(
                f"cannot create queue {queue!r} (SQS name {name!r}): {describe_error(error)}"
            ) from None
    return dead_letters


def _create_queue(client: Any, config: ProcessorConfig, *, queue: str, name: str) -> str:
    fifo = name.endswith(FIFO_SUFFIX)
    kind = {"FifoQueue": "true"} if fifo else {}
    dlq_url = str(
        client.create_queue(QueueName=dead_letter_name(name), Attributes=kind)["QueueUrl"]
    )
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    attributes = {
        **kind,
        "RedrivePolicy": json.dumps(redrive),
        "VisibilityTimeout": str(config.queue_settings(queue).message_visibility_timeout),
    }
    if fifo:
        # So the printed command needs a group id only; a resend of the same payload within
        # five minutes is then dropped as a duplicate, as SQS does.
        attributes["ContentBasedDeduplication"] = "true"
    client.create_queue(QueueName=name, Attributes=attributes)
    return dlq_url


def dead_letter_name(name: str) -> str:
    """`<queue>-dlq`, or `<queue>-dlq.fifo` (a FIFO queue's DLQ is FIFO), as the operator."""
    if name.endswith(FIFO_SUFFIX):
        return name.removesuffix(FIFO_SUFFIX) + DEAD_LETTER_SUFFIX + FIFO_SUFFIX
    return name + DEAD_LETTER_SUFFIX


def send_demo_messages(
    config: ProcessorConfig, provider: Provider, assignment: Assignment, *, count: int
) -> None:
    """For the bundled example: plain messages, flaky ones that retry, ones that fail for good.

    Only tasks this processor runs get messages, so every queue sent to was created.
    """
    producer = Producer.from_config(config)

    def send(name: str, payload: dict[str, Any]) -> None:
        if name in assignment.tasks:
            producer.enqueue(provider[name], payload)

    for index in range(count):
        send("example:job", {"param": f"hello {index}"})
        send("cleanup:job", {"older_than_days": 7, "failure_rate": 0.3})
    if count > 0:
        send("report:job", {"account": "acme"})
        send("report:job", {"account": "unknown"})


@contextlib.contextmanager
def effective_config_file(data: dict[str, Any]) -> Iterator[Path]:
    """The configuration dev mode runs, in a temporary file for the printed command;
    removed when the block ends, however it ends."""
    descriptor, name = tempfile.mkstemp(prefix="taskqueue-dev-", suffix=".yaml")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            yaml.safe_dump(data, file, sort_keys=False)
        yield path
    finally:
        path.unlink(missing_ok=True)


# -- the printed enqueue command ---------------------------------------------------------


def enqueue_command(
    *,
    config: ProcessorConfig,
    provider: Provider,
    assignment: Assignment,
    effective: Path,
    import_path: list[str] | None,
) -> tuple[str, str | None]:
    """A shell line that sends one valid message from a fresh terminal (no venv activated,
    no AWS variables, any working directory), and a note when no valid payload could be
    made up for any task (the line then shows the fields to fill in)."""
    task, payload, fits = _sample_task(provider, assignment)
    environment = dict(DEV_CREDENTIALS)
    if import_path:
        environment["PYTHONPATH"] = os.pathsep.join(import_path)
    arguments = [*console_script(), "enqueue", "--config", str(effective), "--name", task.name]
    if config.physical_name(task.queue).endswith(FIFO_SUFFIX):
        arguments += ["--group-id", task.name]
    arguments.append(json.dumps(payload))
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in environment.items())
    note = None
    if not fits:
        model = task.payload_model.__name__
        note = f"fill in the payload: the fields of {model}, the payload model of {task.name}"
    return f"{prefix} {shlex.join(arguments)}", note


def console_script() -> list[str]:
    """How to run this very installation: the console script beside the interpreter (a
    venv's bin/), else the one on PATH, else the interpreter with `-m`. Always absolute:
    the venv is not on a fresh terminal's PATH."""
    beside = Path(sys.executable).parent / "kube-taskqueue"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("kube-taskqueue")
    if found:
        return [str(Path(found).absolute())]
    return [sys.executable, "-m", "kube_taskqueue.cli"]


def _import_path() -> list[str]:
    # What made the user's app importable here: the working directory, then PYTHONPATH.
    existing = [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]
    return [str(Path.cwd()), *existing]


def _sample_task(
    provider: Provider, assignment: Assignment
) -> tuple[Task[Any], dict[str, Any], bool]:
    """The first task (by name) whose payload model accepts a generated example; else the
    first task with its required fields to fill in (and False)."""
    names = sorted(assignment.tasks)
    for name in names:
        payload = example_payload(provider[name].payload_model)
        if payload is not None:
            return provider[name], payload, True
    first = provider[names[0]]
    return first, {name: "..." for name in _required(first.payload_model)}, False


#: A value of each plain type, for made-up payloads (bool before int: a bool is an int).
_SAMPLES: tuple[tuple[type, Any], ...] = (
    (bool, True),
    (int, 1),
    (float, 1.0),
    (str, "value"),
    (list, []),
    (tuple, []),
    (set, []),
    (frozenset, []),
    (dict, {}),
)


def example_payload(model: type[pydantic.BaseModel]) -> dict[str, Any] | None:
    """A small payload the model accepts (required fields only), or None when the guess
    from the field types does not validate (constraints, custom validators)."""
    payload = {key: _sample_value(annotation) for key, annotation in _required(model).items()}
    try:
        model.model_validate(payload)
    except pydantic.ValidationError:
        return None
    return payload


def _required(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    return {
        field.alias or name: field.annotation
        for name, field in model.model_fields.items()
        if field.is_required()
    }


def _sample_value(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Literal:
        return arguments[0]
    if origin in (typing.Union, types.UnionType) and arguments:
        return _sample_value(arguments[0])
    if origin is typing.Annotated and arguments:
        return _sample_value(arguments[0])
    kind = origin or annotation
    if isinstance(kind, type):
        if issubclass(kind, pydantic.BaseModel):
            return example_payload(kind) or {}
        for sample_type, value in _SAMPLES:
            if issubclass(kind, sample_type):
                return value
    return "value"


# -- progress --------------------------------------------------------------------------


class Progress:
    """Prints the counts when they change, checked every `interval` seconds.

    Failed attempts and unroutable receives count every receive of a message (as the
    metrics do): a message retried three times counts three.
    """

    def __init__(
        self, *, config: ProcessorConfig, dead_letters: dict[str, str], interval: float
    ) -> None:
        self._client: Any = make_client(
            region=config.sqs.region, endpoint=config.sqs.endpoint, call_timeout_seconds=5
        )
        self._dead_letters = dead_letters
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_dead_lettered = 0

    def follow(self, processor: Processor) -> None:
        self._thread = threading.Thread(target=self._run, args=(processor,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 10)

    def line(self, processor: Processor) -> str:
        counts = processor.snapshot()
        return (
            f"processed {counts['processed']} · failed attempts {counts['failed']} · "
            f"unroutable receives {counts['unroutable']} · in flight {counts['in_flight']} · "
            f"dead-lettered {self._dead_lettered()}"
        )

    def _run(self, processor: Processor) -> None:
        last = None
        while not self._stop.wait(self._interval):
            line = self.line(processor)
            if line != last:
                print(line, flush=True)
                last = line

    def _dead_lettered(self) -> int:
        total = 0
        try:
            for url in self._dead_letters.values():
                attributes = self._client.get_queue_attributes(
                    QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                total += int(attributes.get("ApproximateNumberOfMessages", 0))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return self._last_dead_lettered  # a display: the last count is good enough
        self._last_dead_lettered = total
        return total


# -- the process's environment -----------------------------------------------------------


def _use_dev_credentials() -> None:
    os.environ.update(DEV_CREDENTIALS)
    # A real session token would ride along with the dummy keys; a profile that does not
    # exist here would fail every client before the keys are even looked at.
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM (until the processor takes it over) and SIGHUP (a closed terminal) unwind
    like Ctrl-C does, so the server stops and the temporary file is removed; their default
    action would end the process on the spot."""

    def exit_now(signum: int, _frame: types.FrameType | None) -> None:
        raise SystemExit(128 + signum)

    wanted = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {sig: signal.signal(sig, exit_now) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
