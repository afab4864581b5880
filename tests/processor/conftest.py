"""Fixtures for processor tests: a Processor running in this test process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
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
