"""The chart under test, rendered and installed with the real `helm` against the test API
server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from chart import Chart


@pytest.fixture
def chart(control_plane: Any) -> Chart:
    return Chart(control_plane)


@pytest.fixture
def tenant_namespace(control_plane: Any) -> Iterator[str]:
    """A namespace for a tenant's TaskQueues, deleted afterwards."""
    name = f"tenant-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl_run("create", "namespace", name)
    yield name
    control_plane.kubectl_run("delete", "namespace", name, "--wait=false")
