"""Fixtures for the TaskQueue resource tests: a valid manifest to start from."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "manifests" / "accounts.yaml"


@pytest.fixture
def manifest() -> dict[str, Any]:
    """A fresh copy of the example TaskQueue, for a test to break."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
