"""Reliability scenarios print their figures in the test summary."""

from __future__ import annotations

from typing import Any

import pytest

FIGURES: list[str] = []


@pytest.fixture
def report() -> Any:
    return FIGURES.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
