"""The `kube-taskqueue` command: run, enqueue, dev, and the operator's commands.

Errors a user can fix (bad config, unknown task, bad payload, a busy port, a FIFO queue
without a group id) print one line naming the problem and the setting to change, and exit
2; nothing is sent or started then. SQS failing or refusing a call is one line too, exit 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import botocore.exceptions

from kube_taskqueue.assignment import AssignmentError, resolve
from kube_taskqueue.cli import dlq
from kube_taskqueue.config import ConfigError, ProcessorConfig, load_config
from kube_taskqueue.logs import setup_logging
from kube_taskqueue.producer import DelayError, Producer, QueueKindError
from kube_taskqueue.provider import DuplicateTaskError
from kube_taskqueue.runtime.health import HttpBindError
from kube_taskqueue.sqs import describe_error
from kube_taskqueue.task import PayloadError, Task

#: The distribution name on PyPI (the import package is `kube_taskqueue`).
DISTRIBUTION = "kube-taskqueue"

#: Commands implemented by the operator package (installed with the `operator` extra).
OPERATOR_COMMANDS = ("validate", "render", "crd", "iam", "operator")

USAGE_ERROR = 2
SQS_ERROR = 1
#: What a shell reports for a command ended by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130

#: `TASKQUEUE_LOG_FORMAT`: JSON lines (default, for log pipelines) or text (a terminal).
LOG_FORMATS = ("json", "text")


class UsageError(Exception):
    """An error in what the user gave us; printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in OPERATOR_COMMANDS:
        try:
            from kube_taskqueue_operator import cli as operator_cli  # noqa: PLC0415
        except ImportError as error:
            return _fail(
                f"'{args[0]}' needs the operator extra: "
                f"pip install 'kube-taskqueue[operator]' ({error})"
            )
        return operator_cli.main(args)
    parser = build_parser()
    options = parser.parse_args(args)
    try:
        code: int = options.handler(options)
    except (ConfigError, AssignmentError, DuplicateTaskError, PayloadError, UsageError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        # Ctrl-C before a processor took over the signal (while importing, setting up).
        print("kube-taskqueue: interrupted", file=sys.stderr)
        return INTERRUPTED
    return code


def _fail(message: str) -> int:
    print(f"kube-taskqueue: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def build_parser() -> argparse.ArgumentParser:
    """The processor commands' parser (also the source of the generated CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="kube-taskqueue",
        description="Background tasks on SQS queues. Operator commands: "
        + ", ".join(OPERATOR_COMMANDS)
        + " (see `kube-taskqueue validate --help`).",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {importlib.metadata.version(DISTRIBUTION)}",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a processor")
    run.add_argument("--config", required=True, help="processor configuration (YAML)")
    run.set_defaults(handler=_run)

    enqueue = commands.add_parser("enqueue", help="send one task message")
    enqueue.add_argument("--config", required=True, help="processor configuration (YAML)")
    enqueue.add_argument("--name", required=True, help="task name, e.g. example:job")
    enqueue.add_argument(
        "--group-id", help="message group id (MessageGroupId; required by FIFO queues)"
    )
    enqueue.add_argument(
        "--deduplication-id",
        help="deduplication id (MessageDeduplicationId; FIFO queues without "
        "content-based deduplication)",
    )
    later = enqueue.add_mutually_exclusive_group()
    later.add_argument(
        "--delay", type=dlq.parse_duration, help="run it later: 90s, 10m, 2h, 3d (at most 14d)"
    )
    later.add_argument("--at", type=_moment, help="run it at this time: ISO 8601 with a timezone")
    enqueue.add_argument("payload", nargs="?", default="{}", help="payload as JSON")
    enqueue.set_defaults(handler=_enqueue)

    dev = commands.add_parser(
        "dev", help="run the example app (or yours) against an embedded SQS, no AWS needed"
    )
    dev.add_argument("--config", help="processor configuration (default: the bundled example)")
    dev.add_argument(
        "--demo", type=int, default=5, help="demo messages per task (bundled example only)"
    )
    dev.add_argument("--duration", type=float, help="stop after this many seconds")
    dev.add_argument("--sqs-port", type=_port, help="port of the embedded SQS (default: free)")
    dev.add_argument(
        "--http-port", type=_port, help="port of /healthz and /metrics (default: free)"
    )
    dev.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level (default: the config's logLevel); DEBUG shows tracebacks",
    )
    dev.set_defaults(handler=_dev)
    dlq.add_parser(commands)

    dashboard = commands.add_parser(
        "dashboard", help="a local web dashboard: queues, processors, dead letters"
    )
    dashboard.add_argument("-n", "--namespace", help="one namespace (default: all)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    dashboard.add_argument("--port", type=_port, default=8089, help="port (default 8089)")
    dashboard.add_argument(
        "--read-only", action="store_true", help="no redrive or purge buttons; POSTs refused"
    )
    dashboard.set_defaults(handler=_dashboard)
    return parser


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone: add one, e.g. {text}Z or {text}+02:00"
        )
    return moment


def _port(text: str) -> int:
    # Checked by argparse, so a bad value is a usage line rather than a config traceback.
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def _run(options: argparse.Namespace) -> int:
    from kube_taskqueue.runtime.runner import run_processor  # noqa: PLC0415 - keeps `enqueue` light

    config = load_config(options.config)
    setup_logging(config.log_level, json_lines=_log_format() == "json")
    try:
        return run_processor(config)
    except HttpBindError as error:
        raise UsageError(_http_problem(error, setting_in=options.config)) from None
    except botocore.exceptions.BotoCoreError as error:
        # Only what fails before anything runs (half-set credentials); later SQS errors
        # are retried by the processor itself.
        return _sqs_failure(describe_error(error, endpoint=config.sqs.endpoint))


def _log_format() -> str:
    value = os.environ.get("TASKQUEUE_LOG_FORMAT", "json").strip().lower() or "json"
    if value not in LOG_FORMATS:
        raise UsageError(f"TASKQUEUE_LOG_FORMAT is {value!r}; use one of {', '.join(LOG_FORMATS)}")
    return value


def _http_problem(error: HttpBindError, *, setting_in: str) -> str:
    """One line for an endpoint that cannot listen, naming the config key to change."""
    key = "http.port" if error.port_in_use else "http.host (or http.port)"
    return (
        f"cannot serve /healthz and /metrics on {error.host}:{error.port}: {error.reason}; "
        f"set {key} in {setting_in} (http.port 0 picks a free port)"
    )


def _enqueue(options: argparse.Namespace) -> int:
    config = load_config(options.config)
    payload = _payload_argument(options.payload)
    task = _task_named(config, options.name)
    try:
        # Inside: boto3 checks half-set credentials when the client is built.
        producer = Producer.from_config(config)
        message_id = producer.enqueue(
            task,
            payload,
            group_id=options.group_id,
            deduplication_id=options.deduplication_id,
            delay=options.delay,
            eta=options.at,
        )
    except DelayError as error:
        raise UsageError(str(error)) from None
    except QueueKindError as error:
        raise UsageError(_kind_problem(error, config)) from None
    except botocore.exceptions.ClientError as error:
        hint = _fifo_hint(error)
        if hint:
            raise UsageError(f"SQS refused the message: {hint}") from None
        return _sqs_failure(_refusal(error, task=task, config=config))
    except botocore.exceptions.BotoCoreError as error:
        return _sqs_failure(describe_error(error, endpoint=config.sqs.endpoint))
    print(message_id)
    return 0


def _payload_argument(text: str) -> dict[str, object]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"the payload is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"the payload must be a JSON object, got {type(payload).__name__}")
    return payload


def _task_named(config: ProcessorConfig, name: str) -> Task[Any]:
    # Any task of the app may be sent, not only this processor's share of them.
    provider, _ = resolve(config.model_copy(update={"tasks": None}))
    if name not in provider:
        raise UsageError(
            f"unknown task {name!r} in app {config.app!r} "
            f"(known tasks: {', '.join(provider.names)})"
        )
    return provider[name]


def _sqs_name(config: ProcessorConfig, queue: str) -> str:
    url = config.queue_settings(queue).url
    return url.rsplit("/", 1)[-1] if url else config.physical_name(queue)


def _kind_problem(error: QueueKindError, config: ProcessorConfig) -> str:
    where = f"queue {error.queue!r} (SQS queue {_sqs_name(config, error.queue)!r})"
    if error.fifo:
        return (
            f"{where} of task {error.task!r} is a FIFO queue: give --group-id (its "
            "MessageGroupId, e.g. the task name), and --deduplication-id unless the queue "
            "has content-based deduplication"
        )
    return (
        f"{where} of task {error.task!r} is a standard queue: --deduplication-id is only "
        "for FIFO queues (names ending in .fifo)"
    )


def _fifo_hint(error: botocore.exceptions.ClientError) -> str | None:
    """The option to add when SQS refuses a FIFO message for a missing id."""
    text = str(error.response.get("Error", {}).get("Message", ""))
    if "MessageGroupId" in text:
        return f"{text} (give --group-id)"
    if "MessageDeduplicationId" in text:
        return f"{text} (give --deduplication-id, or enable content-based deduplication)"
    return None


def _refusal(
    error: botocore.exceptions.ClientError, *, task: Task[Any], config: ProcessorConfig
) -> str:
    detail = error.response.get("Error", {})
    code = str(detail.get("Code", ""))
    text = f"SQS refused the message: {code}: {detail.get('Message')}"
    if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
        text += (
            f" (queue {task.queue!r} of task {task.name!r} is SQS queue "
            f"{_sqs_name(config, task.queue)!r}: check sqs.queuePrefix, sqs.region and "
            "sqs.endpoint, or create the queue)"
        )
    return text


def _sqs_failure(message: str) -> int:
    print(f"kube-taskqueue: {message}", file=sys.stderr)
    return SQS_ERROR


def _dashboard(options: argparse.Namespace) -> int:
    try:
        from kube_taskqueue_dashboard.command import serve  # noqa: PLC0415 - an optional extra
    except ImportError as error:
        raise UsageError(
            f"the dashboard needs its extra: pip install 'kube-taskqueue[dashboard]' ({error})"
        ) from None
    return serve(
        namespace=options.namespace,
        host=options.host,
        port=options.port,
        read_only=options.read_only,
    )


def _dev(options: argparse.Namespace) -> int:
    from kube_taskqueue.cli.dev import DevError, run_dev  # noqa: PLC0415 - moto is an optional extra

    try:
        return run_dev(
            config_path=options.config,
            demo_messages=options.demo,
            duration=options.duration,
            sqs_port=options.sqs_port,
            http_port=options.http_port,
            log_level=options.log_level,
        )
    except HttpBindError as error:
        raise UsageError(
            f"cannot serve /healthz and /metrics on port {error.port}: {error.reason}; "
            "give --http-port another port, or leave it out to pick a free one"
        ) from None
    except DevError as error:
        raise UsageError(str(error)) from None
