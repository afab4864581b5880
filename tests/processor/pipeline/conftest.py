"""Fixtures of the pipeline tests: a real `kube-taskqueue run` of this directory's task app,
and an HTTP proxy in front of moto that records (and may hold) every SQS call."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Records
from pipelinesupport import PipelineProcess
from sqsproxy import SqsProxy


@pytest.fixture
def spawn_pipeline(tmp_path: Path, records: Records) -> Iterator[Callable[..., PipelineProcess]]:
    started: list[PipelineProcess] = []

    def start(config: dict[str, Any]) -> PipelineProcess:
        process = PipelineProcess(config, tmp_path, {"RECORD_FILE": str(records.path)})
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def sqs_proxy(moto_port: int) -> Iterator[SqsProxy]:
    proxy = SqsProxy(moto_port)
    yield proxy
    proxy.close()


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """The file whose creation lets `block:job` tasks return."""
    return tmp_path / "release"
