"""Helpers of the pipeline tests: configurations of this directory's task app, and a real
`kube-taskqueue run` of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml
from harness import REGION, SUPPORT, ProcessorProcess, free_port, wait_for

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
        self.port = free_port()
        config = {**config, "http": {"host": "127.0.0.1", "port": self.port}}
        self.config_path = directory / f"pipeline-{uuid.uuid4().hex[:6]}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.config_path.with_suffix(".log")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kube_taskqueue.cli", "run", "--config", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(HERE), str(SUPPORT)])},
            cwd=directory,
        )

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait_output(self, text: str, *, timeout: float = 30) -> None:
        """Wait until the log says `text` (or the process is gone)."""
        wait_for(lambda: text in self.output() or self.process.poll() is not None, timeout=timeout)
        assert text in self.output(), self.output()
