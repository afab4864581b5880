"""The provider: the set of tasks of one service, indexed by name and by queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import pydantic

from kube_taskqueue.task import FunctionTask, Message, SendRequest, Task, check_field_rules

FunctionT = TypeVar("FunctionT", bound=Callable[..., Awaitable[None] | None])


class DuplicateTaskError(ValueError):
    """Two tasks of one provider share a name, so a message could not be routed."""


class Provider:
    """The tasks of one service. Names are unique: they route messages (`JobName`)."""

    def __init__(self, tasks: Iterable[Task[Any]] = ()) -> None:
        self._tasks: dict[str, Task[Any]] = {}
        for task in tasks:
            self.add(task)

    def add(self, task: Task[Any]) -> Task[Any]:
        """Register a task instance and return it.

        Raises:
            DuplicateTaskError: another task of this provider has its name.
            ValueError: its FIFO `group_by`/`deduplicate_by` names no field of its payload model.
        """
        check_field_rules(
            task.name,
            task.payload_model,
            group_by=type(task).group_by,
            deduplicate_by=type(task).deduplicate_by,
        )
        existing = self._tasks.get(task.name)
        if existing is not None:
            raise DuplicateTaskError(
                f"task name {task.name!r} is defined twice: by {existing.definition} "
                f"and by {task.definition}"
            )
        self._tasks[task.name] = task
        return task

    def task(
        self,
        name: str,
        *,
        queue: str,
        payload_model: type[pydantic.BaseModel] | None = None,
        timeout_seconds: float | None = None,
        handle_error: Callable[[Exception, Message], bool] | None = None,
        build_message: Callable[[Any, SendRequest], SendRequest] | None = None,
        max_concurrency: int | None = None,
        rate_limit: float | None = None,
        group_by: str | Callable[[Any], Any] | None = None,
        deduplicate_by: str | Callable[[Any], Any] | None = None,
    ) -> Callable[[FunctionT], FunctionT]:
        """Register a function as a task; its first parameter's annotation is the payload."""

        def register(function: FunctionT) -> FunctionT:
            self.add(
                FunctionTask(
                    function=function,
                    name=name,
                    queue=queue,
                    payload_model=payload_model,
                    timeout_seconds=timeout_seconds,
                    handle_error=handle_error,
                    build_message=build_message,
                    max_concurrency=max_concurrency,
                    rate_limit=rate_limit,
                    group_by=group_by,
                    deduplicate_by=deduplicate_by,
                )
            )
            return function

        return register

    def get(self, name: str) -> Task[Any] | None:
        """The task of this name, or None (`provider[name]` raises KeyError instead)."""
        return self._tasks.get(name)

    def __getitem__(self, name: str) -> Task[Any]:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise KeyError(f"unknown task {name!r} (known tasks: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task[Any]]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def names(self) -> list[str]:
        return sorted(self._tasks)

    def tasks_by_queue(self) -> dict[str, list[str]]:
        """Every queue the provider routes to, with the names of its tasks (sorted)."""
        queues: dict[str, list[str]] = {}
        for task in self._tasks.values():
            queues.setdefault(task.queue, []).append(task.name)
        return {queue: sorted(names) for queue, names in sorted(queues.items())}
