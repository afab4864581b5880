"""The console script as a user runs it, in a subprocess with an environment of the test's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import SUPPORT

# The console script installed next to this interpreter, as a user runs it.
TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """`cli(*args, env=..., drop=...)`: run kube-taskqueue in tmp_path; `env` adds variables,
    `drop` removes every variable starting with one of its prefixes."""

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
        )

    return run
