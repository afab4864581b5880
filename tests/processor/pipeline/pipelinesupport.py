"""Helpers of the pipeline tests: configurations of this directory's task app, and a real
`kube-taskqueue run` of it."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from harness import REGION, ProcessorProcess, wait_for

HERE = Path(__file__).parent

#: Every task of pipelineapp on the `work` queue (a processor of them polls `work` only).
WORK_TASKS = ["block:job", "abort:job", "abort_async:job", "race:job", "ok:job"]


def pipeline_config(
    *,
    endpoint: str,
    prefix: str,
    queues: dict[str, dict[str, Any]],
    tasks: list[str] | None = WORK_TASKS,
    **extra: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "app": "pipelineapp:provider",
        "processor": "pipeline",
        "workers": 2,
        "shutdownTimeout": 30,
        "sqs": {"endpoint": endpoint, "region": REGION, "queuePrefix": prefix, "callTimeout": 3},
        "queues": queues,
        **extra,
    }
    if tasks is not None:
        config["tasks"] = tasks
    return config


class PipelineProcess(ProcessorProcess):
    """`kube-taskqueue run` with this directory's task app importable."""

    def __init__(self, config: dict[str, Any], directory: Path, env: dict[str, str]) -> None:
        super().__init__(config, directory, env, import_paths=(HERE,), name="pipeline")

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait_output(self, text: str, *, timeout: float = 30) -> None:
        """Wait until the log says `text` (or the process is gone)."""
        wait_for(lambda: text in self.output() or self.process.poll() is not None, timeout=timeout)
        assert text in self.output(), self.output()
