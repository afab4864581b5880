"""Fixtures for processor tests: a Processor running in this test process, and the console
script as a user runs it (a subprocess with an environment of the test's)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import SUPPORT
from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import ProcessorConfig
from kube_taskqueue.runtime.app import Processor


@pytest.fixture
def start_processor() -> Iterator[Callable[[dict[str, Any]], Processor]]:
    running: list[Processor] = []

    def start(data: dict[str, Any]) -> Processor:
        config = ProcessorConfig.model_validate(data)
        provider, assignment = resolve(config)
        processor = Processor(config=config, provider=provider, assignment=assignment)
        processor.start()
        running.append(processor)
        return processor

    yield start
    for processor in running:
        processor.stop(timeout=5)


# The console script installed next to this interpreter, as a user runs it.
TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """`cli(*args, env=..., drop=...)`: run kube-taskqueue in tmp_path, with tests/support and
    tmp_path importable; `env` adds variables (or replaces PYTHONPATH), `drop` removes every
    variable starting with one of its prefixes."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        environment = {
            key: value for key, value in os.environ.items() if not (drop and key.startswith(drop))
        }
        environment["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), str(tmp_path)])
        environment.update(env or {})
        return subprocess.run(
            [str(TASKQUEUE), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=environment,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,  # no terminal: what asks for confirmation refuses
        )

    return run
