"""Fixtures for the TaskQueue resource tests: a valid manifest to start from, and the
kubelet's image reference parser as an oracle."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).parents[2] / "examples" / "manifests" / "accounts.yaml"
REFCHECK = Path(__file__).parent / "refcheck"


@pytest.fixture
def manifest() -> dict[str, Any]:
    """A fresh copy of the example TaskQueue, for a test to break."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


@pytest.fixture(scope="session")
def image_parser(tmp_path_factory: pytest.TempPathFactory) -> Callable[[list[str]], list[str]]:
    """What distribution/reference's ParseNormalizedNamed (the kubelet's parser) says of each
    image: "ok" or its error. Built with Go (a prerequisite of the test control plane) from
    tests/resource/refcheck; its module comes from the Go module proxy or cache."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build the image reference oracle (tests/resource/refcheck)")
    binary = tmp_path_factory.mktemp("refcheck") / "refcheck"
    subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=REFCHECK,
        check=True,
        timeout=600,
        capture_output=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )

    def parse(images: list[str]) -> list[str]:
        lines = "".join(json.dumps(image) + "\n" for image in images)
        result = subprocess.run(
            [str(binary)], input=lines, capture_output=True, text=True, timeout=60, check=True
        )
        return result.stdout.splitlines()

    return parse
