"""`kube-taskqueue dlq`: see what failed, and run it again.

    kube-taskqueue dlq stats   --config processor.yaml            # every queue of the app
    kube-taskqueue dlq peek    -n billing accounts work --task accounts:sync
    kube-taskqueue dlq redrive -n billing accounts work --older-than 10m --rate 50
    kube-taskqueue dlq purge   --config processor.yaml work --task accounts:sync --yes

Exit codes: 0 done; 1 SQS failed or refused; 2 a usage error (nothing done); 3 partly done
(some messages could not be moved or deleted and are still in the dead-letter queue: re-run);
130 interrupted (re-run: the redrive journal keeps it from sending anything twice).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import botocore.exceptions

from kube_taskqueue.config import load_config
from kube_taskqueue.ops import deadletters
from kube_taskqueue.ops.deadletters import DeadLetterError, QueuePair, Selection, Summary
from kube_taskqueue.ops.journal import RedriveJournal
from kube_taskqueue.ops.targets import Target, TargetError, from_cluster, from_config
from kube_taskqueue.sqs import describe_error, make_client

DONE = 0
SQS_ERROR = 1
USAGE_ERROR = 2
PARTIAL = 3
#: Characters of a body `peek` shows unless --full.
BODY_PREVIEW = 200
#: Seconds `redrive` follows SQS's own move task before leaving it running.
MOVE_TIMEOUT = 600

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class DlqUsageError(Exception):
    """Printed as one line; exit 2."""


def add_parser(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="inspect, redrive and purge dead-letter queues",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = dlq.add_subparsers(dest="action", required=True)
    stats = actions.add_parser("stats", aliases=["list"], help="counts per queue and task")
    _target_arguments(stats, queue_required=False)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=run, action=_stats)

    peek = actions.add_parser("peek", help="show dead letters without removing them")
    _target_arguments(peek)
    _selection_arguments(peek, default_limit=10)
    peek.add_argument("--json", action="store_true", help="print JSON lines")
    peek.add_argument("--full", action="store_true", help="whole bodies, not the first 200")
    peek.set_defaults(handler=run, action=_peek)

    redrive = actions.add_parser("redrive", help="move dead letters back to their queue")
    _target_arguments(redrive)
    _selection_arguments(redrive, default_limit=None)
    redrive.add_argument("--rate", type=_positive, help="messages per second at most")
    redrive.add_argument("--dry-run", action="store_true", help="count, move nothing")
    redrive.set_defaults(handler=run, action=_redrive)

    purge = actions.add_parser("purge", help="delete dead letters (asks first)")
    _target_arguments(purge)
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", help="only the dead letters of this task")
    which.add_argument("--all", action="store_true", help="every dead letter of the queue")
    purge.add_argument("--yes", action="store_true", help="do not ask (scripts)")
    purge.set_defaults(handler=run, action=_purge)


def _target_arguments(parser: argparse.ArgumentParser, *, queue_required: bool = True) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="processor configuration (YAML) naming the queues")
    where.add_argument("-n", "--namespace", help="namespace of the TaskQueue (kubeconfig)")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="[TASKQUEUE] QUEUE",
        help="with -n: the TaskQueue, then the queue; with --config: the queue"
        + ("" if queue_required else " (default: all)"),
    )
    parser.add_argument(
        "--visibility",
        type=_positive_int,
        default=deadletters.SCAN_VISIBILITY_SECONDS,
        help="seconds each dead letter is held while being looked at (given back right "
        "after; if this command is killed, when they end)",
    )
    parser.set_defaults(queue_required=queue_required)


def _selection_arguments(parser: argparse.ArgumentParser, *, default_limit: int | None) -> None:
    parser.add_argument("--task", help="only dead letters of this task (JobName)")
    parser.add_argument("--older-than", type=parse_duration, help="sent longer ago than, e.g. 30m")
    parser.add_argument(
        "--newer-than", type=parse_duration, help="sent more recently than, e.g. 2h"
    )
    parser.add_argument("--limit", type=_positive_int, default=default_limit, help="at most N")


def parse_duration(text: str) -> timedelta:
    found = _DURATION.match(text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 10m, 2h or 3d")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def run(options: argparse.Namespace) -> int:
    """Dispatch with the errors every action shares turned into one line and an exit code."""
    handler: Callable[[argparse.Namespace], int] = options.action
    try:
        return handler(options)
    except (DlqUsageError, TargetError, DeadLetterError) as error:
        print(f"kube-taskqueue: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        print(f"kube-taskqueue: {describe_error(error)}", file=sys.stderr)
        return SQS_ERROR


def _target(options: argparse.Namespace) -> tuple[Target, str | None]:
    names: list[str] = list(options.names)
    if options.namespace:
        if not names:
            raise DlqUsageError("give the TaskQueue's name after -n NAMESPACE")
        taskqueue, rest = names[0], names[1:]
        target = from_cluster(options.namespace, taskqueue)
    else:
        target, rest = from_config(load_config(options.config), source=options.config), names
    if len(rest) > 1:
        raise DlqUsageError(f"one queue at a time, got {' '.join(rest)}")
    queue = rest[0] if rest else None
    if queue is None and options.queue_required:
        if len(target.physical) != 1:
            raise DlqUsageError(
                f"name the queue: {target.source} has {', '.join(sorted(target.physical))}"
            )
        queue = next(iter(target.physical))
    return target.only(queue), queue


def _pairs(
    options: argparse.Namespace, *, skip_without_dead_letters: bool = False
) -> tuple[Any, list[QueuePair]]:
    """The client and the queue pairs asked for; queues without a DLQ are an error, or left
    out when listing every queue (`skip_without_dead_letters`)."""
    target, queue = _target(options)
    client = make_client(region=target.region, endpoint=target.endpoint, call_timeout_seconds=10)
    pairs = []
    for name, physical in sorted(target.physical.items()):
        url = target.urls.get(name) or client.get_queue_url(QueueName=physical)["QueueUrl"]
        try:
            pairs.append(deadletters.locate(client, queue=name, url=str(url)))
        except DeadLetterError:
            if queue is not None or not skip_without_dead_letters:
                raise
    return client, pairs


def _selection(options: argparse.Namespace) -> Selection:
    return Selection(
        task=options.task,
        older_than=options.older_than,
        newer_than=options.newer_than,
        limit=options.limit,
    )


def _stats(options: argparse.Namespace) -> int:
    client, pairs = _pairs(options, skip_without_dead_letters=True)
    reports = [deadletters.report(client, pair, visibility=options.visibility) for pair in pairs]
    if options.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
        return DONE
    from rich.console import Console  # noqa: PLC0415 - rich only where output is drawn
    from rich.table import Table  # noqa: PLC0415

    table = Table(
        "queue", "visible", "in flight", "delayed", "DLQ", "dead letters", "oldest", "by task"
    )
    for entry in reports:
        table.add_row(
            entry.pair.queue,
            str(entry.source.visible),
            str(entry.source.in_flight),
            str(entry.source.delayed),
            entry.pair.dead_letter_name,
            str(entry.dead_letters.visible + entry.dead_letters.in_flight),
            deadletters.age_text(entry.oldest),
            ", ".join(f"{task} {count}" for task, count in entry.by_task.most_common()) or "-",
        )
    Console().print(table)
    return DONE


def _peek(options: argparse.Namespace) -> int:
    client, [pair] = _pairs(options)
    found = deadletters.peek(client, pair, _selection(options), visibility=options.visibility)
    limit = None if options.full else BODY_PREVIEW
    if options.json:
        for message in found:
            print(json.dumps(message.as_dict(body_limit=limit)))
        return DONE
    from rich.console import Console  # noqa: PLC0415

    console = Console()
    if not found:
        console.print(f"no dead letters in {pair.dead_letter_name} match")
        return DONE
    for message in found:
        entry = message.as_dict(body_limit=limit)
        console.print(
            f"[bold]{entry['id']}[/bold]  task {entry['task']}  trace {entry['traceId']}  "
            f"received {entry['receiveCount']} times  sent {entry['sent']}  first received "
            f"{entry['firstReceive']}",
            highlight=False,
        )
        console.print(f"  {entry['body']}", markup=False, highlight=False)
    console.print(f"{len(found)} shown; nothing was removed")
    return DONE


@contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _redrive(options: argparse.Namespace) -> int:
    client, [pair] = _pairs(options)
    selection = _selection(options)
    waiting = deadletters.counts(client, pair.dead_letter_url).visible
    summary: Summary | None = None
    with _progress(
        selection.limit or waiting or None, f"redriving {pair.dead_letter_name}"
    ) as tick:
        if not selection.filtered and selection.limit is None and not options.dry_run:
            handle = deadletters.move_task(client, pair, rate=options.rate)
            if handle is not None:
                summary = deadletters.wait_for_move(
                    client, pair, timeout=MOVE_TIMEOUT, progress=tick
                )
        if summary is None:
            journal = RedriveJournal.for_queue(pair.dead_letter_arn)
            try:
                summary = deadletters.redrive(
                    client,
                    pair,
                    selection,
                    journal=journal,
                    rate=options.rate,
                    dry_run=options.dry_run,
                    progress=tick,
                    visibility=options.visibility,
                )
            finally:
                journal.close()
    verb = "would move" if summary.dry_run else "moved"
    line = f"{verb} {summary.moved} from {pair.dead_letter_name} to {pair.url.rsplit('/', 1)[-1]}"
    line += f" (path: {summary.path})"
    if summary.tasks:
        line += "; by task: " + ", ".join(f"{t} {n}" for t, n in summary.tasks.most_common())
    if summary.skipped:
        line += f"; {summary.skipped} not selected, left in place"
    if summary.failed:
        line += f"; {summary.failed} could not be moved and are still there: re-run"
    print(line)
    return PARTIAL if summary.failed else DONE


def _purge(options: argparse.Namespace) -> int:
    client, [pair] = _pairs(options)
    selection = Selection(task=options.task)
    what = f"the dead letters of task {options.task}" if options.task else "every dead letter"
    if not options.yes:
        if not sys.stdin.isatty():
            raise DlqUsageError(f"purge deletes {what} of {pair.dead_letter_name}: add --yes")
        answer = input(f"Delete {what} of {pair.dead_letter_name}? This cannot be undone [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return DONE
    summary = deadletters.purge(client, pair, selection, visibility=options.visibility)
    print(f"deleted {summary.deleted} from {pair.dead_letter_name} (path: {summary.path})")
    return PARTIAL if summary.failed else DONE
