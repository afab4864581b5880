"""Operator tests use the fixtures of tests/conftest.py (shared with the reliability suite), and
`start_operator` for tests that start their own operators (some must start after objects
exist, or with settings of their own)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from operator_harness import OperatorProcess


@pytest.fixture
def start_operator(control_plane, crd, tmp_path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(*, wait: bool = True, **settings: object) -> OperatorProcess:
        process = OperatorProcess(control_plane, tmp_path, **settings)
        started.append(process)
        if wait:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()
