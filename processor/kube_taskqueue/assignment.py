"""Which tasks and queues one processor takes, and the seed's split rule that guards it.

A processor that polls a queue receives every message on it, so it must handle every task
routed to that queue; otherwise messages of the missing tasks are received by the wrong
processor, fail, and end in the dead-letter queue.

The configuration's `queues:` are checked here too, because only the provider knows which
queues exist: settings for a queue no task of the app uses (a misspelt name) are refused,
since the real queue would silently run on the defaults.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from kube_taskqueue.config import ProcessorConfig, QueueSettings
from kube_taskqueue.provider import Provider

log = logging.getLogger(__name__)


class AssignmentError(ValueError):
    """The processor's task set, or its queue settings, cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Assignment:
    """The resolved work of one processor: its task names and the queues it polls."""

    processor: str
    tasks: frozenset[str]
    queues: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    """Configuration this processor ignores on purpose (logged at start-up by `resolve`)."""


def assign(
    provider: Provider,
    *,
    processor: str,
    tasks: list[str] | None,
    queue_settings: Mapping[str, QueueSettings] | None = None,
) -> Assignment:
    """Resolve a processor's task set against the provider and enforce the split rule.

    `queue_settings` (the configuration's `queues:`) must name queues of the app's tasks.
    Settings for a queue of the app that this processor does not poll are allowed, with a
    warning: one `queues:` block may serve every processor of an app (and `kube-taskqueue
    enqueue`, which sends any task of the app, uses their `url`).
    """
    chosen = set(provider.names) if tasks is None else set(tasks)
    problems: list[str] = []
    unknown = sorted(chosen - set(provider.names))
    if unknown:
        problems.append(
            f"processor {processor!r} names tasks the provider does not define: "
            f"{', '.join(unknown)} (known: {', '.join(provider.names) or 'none'})"
        )
    if not chosen:
        problems.append(f"processor {processor!r} has no tasks")
    queues = sorted({provider[name].queue for name in chosen if name in provider})
    by_queue = provider.tasks_by_queue()
    for queue in queues:
        missing = [name for name in by_queue[queue] if name not in chosen]
        if missing:
            handled = [name for name in by_queue[queue] if name in chosen]
            problems.append(
                f"queue {queue!r} would be split: processor {processor!r} polls it for "
                f"{', '.join(handled)} but not for {', '.join(missing)}; a queue's tasks must "
                "all belong to the processor that polls it"
            )
    warnings: list[str] = []
    for queue, settings in sorted((queue_settings or {}).items()):
        if queue in queues:
            continue
        if queue not in by_queue:
            others = [name for name in by_queue if name not in queues]
            problems.append(
                f"queues.{queue}: no task of the app uses queue {queue!r}, so its settings "
                "would be ignored (a misspelt name leaves the real queue on the defaults); "
                f"processor {processor!r} polls {', '.join(queues) or 'no queue'}"
                + (f", the app's other queues are {', '.join(others)}" if others else "")
            )
            continue
        ignored = sorted(
            (QueueSettings.model_fields[field].alias or field)
            for field in settings.model_fields_set - {"url"}
        )
        if ignored:  # a `url` alone is for sending, not polling: nothing is ignored
            warnings.append(
                f"queues.{queue}: processor {processor!r} does not poll queue {queue!r} (its "
                f"tasks {', '.join(by_queue[queue])} are not in this processor's task set), "
                f"so {', '.join(ignored)} there have no effect here"
            )
    if problems:
        raise AssignmentError("; ".join(problems))
    return Assignment(
        processor=processor,
        tasks=frozenset(chosen),
        queues=tuple(queues),
        warnings=tuple(warnings),
    )


def load_provider(app: str, *, search_path: Path | None = None) -> Provider:
    """Import `package.module:attribute` and check it is a Provider.

    Like Celery's `-A` and gunicorn, the working directory is importable, so an app next to
    its configuration runs without being installed.
    """
    module_name, _, attribute = app.partition(":")
    root = str(search_path or Path.cwd())
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise AssignmentError(
            f"app {app!r}: cannot import module {module_name!r}: {error}"
        ) from None
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise AssignmentError(f"app {app!r}: module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    if inspect.isfunction(target):  # a factory, as in the seed's NewProvider(...)
        target = target()
    if not isinstance(target, Provider):
        raise AssignmentError(
            f"app {app!r} is a {type(target).__name__}, not a kube_taskqueue.Provider"
        )
    return target


def resolve(
    config: ProcessorConfig, provider: Provider | None = None
) -> tuple[Provider, Assignment]:
    """Load the config's provider (unless given) and resolve its assignment.

    Raises `AssignmentError` for an unsafe task set or settings of a queue no task uses;
    logs the assignment's warnings.
    """
    provider = provider if provider is not None else load_provider(config.app)
    assignment = assign(
        provider,
        processor=config.processor,
        tasks=config.tasks,
        queue_settings=config.queues,
    )
    for warning in assignment.warnings:
        log.warning("%s", warning)
    return provider, assignment
