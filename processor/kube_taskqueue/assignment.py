"""Which tasks and queues one processor takes, and the seed's split rule that guards it.

A processor that polls a queue receives every message on it, so it must handle every task
routed to that queue; otherwise messages of the missing tasks are received by the wrong
processor, fail, and end in the dead-letter queue.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from pathlib import Path

from kube_taskqueue.config import ProcessorConfig
from kube_taskqueue.provider import Provider


class AssignmentError(ValueError):
    """The processor's task set cannot be run safely; the message says why."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Assignment:
    """The resolved work of one processor: its task names and the queues it polls."""

    processor: str
    tasks: frozenset[str]
    queues: tuple[str, ...]


def assign(provider: Provider, *, processor: str, tasks: list[str] | None) -> Assignment:
    """Resolve a processor's task set against the provider and enforce the split rule."""
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
    if problems:
        raise AssignmentError("; ".join(problems))
    return Assignment(processor=processor, tasks=frozenset(chosen), queues=tuple(queues))


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
    """Load the config's provider (unless given) and resolve its assignment."""
    provider = provider if provider is not None else load_provider(config.app)
    return provider, assign(provider, processor=config.processor, tasks=config.tasks)
