"""The `kube-taskqueue` command: run, enqueue, dev, and the operator's commands.

Errors a user can fix (bad config, unknown task, bad payload) print one line naming the
problem and exit 2; nothing is sent or started then.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from collections.abc import Sequence

import botocore.exceptions

from kube_taskqueue.assignment import AssignmentError, resolve
from kube_taskqueue.config import ConfigError, load_config
from kube_taskqueue.logs import setup_logging
from kube_taskqueue.producer import Producer
from kube_taskqueue.provider import DuplicateTaskError
from kube_taskqueue.task import PayloadError

#: The distribution name on PyPI (the import package is `kube_taskqueue`).
DISTRIBUTION = "kube-taskqueue"

#: Commands implemented by the operator package (installed with the `operator` extra).
OPERATOR_COMMANDS = ("validate", "render", "crd", "operator")

USAGE_ERROR = 2


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
    parser = _parser()
    options = parser.parse_args(args)
    try:
        code: int = options.handler(options)
    except (ConfigError, AssignmentError, DuplicateTaskError, PayloadError, UsageError) as error:
        return _fail(str(error))
    return code


def _fail(message: str) -> int:
    print(f"kube-taskqueue: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def _parser() -> argparse.ArgumentParser:
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
    enqueue.add_argument("payload", nargs="?", default="{}", help="payload as JSON")
    enqueue.set_defaults(handler=_enqueue)

    dev = commands.add_parser(
        "dev", help="run the example app (or yours) against an embedded SQS, no AWS needed"
    )
    dev.add_argument("--config", help="processor configuration (default: the bundled example)")
    dev.add_argument("--demo", type=int, default=5, help="demo messages per task to send")
    dev.add_argument("--duration", type=float, help="stop after this many seconds")
    dev.add_argument("--sqs-port", type=int, help="port of the embedded SQS (default: free)")
    dev.add_argument("--http-port", type=int, help="port of /healthz and /metrics")
    dev.set_defaults(handler=_dev)
    return parser


def _run(options: argparse.Namespace) -> int:
    from kube_taskqueue.runner import run_processor  # noqa: PLC0415 - keeps `enqueue` light

    config = load_config(options.config)
    setup_logging(config.log_level, json_lines=os.environ.get("TASKQUEUE_LOG_FORMAT") != "text")
    return run_processor(config)


def _enqueue(options: argparse.Namespace) -> int:
    config = load_config(options.config)
    try:
        payload = json.loads(options.payload)
    except json.JSONDecodeError as error:
        raise UsageError(f"the payload is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"the payload must be a JSON object, got {type(payload).__name__}")
    provider, _ = resolve(config.model_copy(update={"tasks": None}))
    if options.name not in provider:
        raise UsageError(
            f"unknown task {options.name!r} in app {config.app!r} "
            f"(known tasks: {', '.join(provider.names)})"
        )
    producer = Producer.from_config(config)
    try:
        message_id = producer.enqueue(provider[options.name], payload)
    except botocore.exceptions.ClientError as error:
        detail = error.response.get("Error", {})
        print(
            "kube-taskqueue: SQS refused the message: "
            f"{detail.get('Code')}: {detail.get('Message')}",
            file=sys.stderr,
        )
        return 1
    except botocore.exceptions.BotoCoreError as error:
        print(f"kube-taskqueue: cannot reach SQS: {error}", file=sys.stderr)
        return 1
    print(message_id)
    return 0


def _dev(options: argparse.Namespace) -> int:
    from kube_taskqueue.dev import run_dev  # noqa: PLC0415 - moto is an optional extra

    setup_logging("INFO", json_lines=False)
    return run_dev(
        config_path=options.config,
        demo_messages=options.demo,
        duration=options.duration,
        sqs_port=options.sqs_port,
        http_port=options.http_port,
    )


if __name__ == "__main__":
    raise SystemExit(main())
