"""Settings under `queues:` must name a queue of the app: a misspelt one is refused at start.

Before, `queues: {wrok: ...}` was accepted and the real queue `work` ran on the defaults
without a word. Settings for a queue of the app that this processor does not poll are kept
(one `queues:` block may serve every processor of an app, and `enqueue` uses their `url`),
with a start-up warning naming what has no effect.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sampleapp
import yaml
from harness import SUPPORT, processor_config
from kube_taskqueue.assignment import AssignmentError, assign, resolve
from kube_taskqueue.config import ProcessorConfig, QueueSettings

# The console script installed next to this interpreter, as a user runs it.
TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"

MISSPELT = {"wrok": {"pollInterval": 1, "messageVisibilityTimeout": 10}}


def test_settings_of_a_queue_no_task_uses_are_refused_naming_it_and_the_known_ones():
    with pytest.raises(AssignmentError) as error:
        assign(
            sampleapp.provider,
            processor="main",
            tasks=["record:job", "record_async:job"],
            queue_settings={"wrok": QueueSettings(pollInterval=1)},
        )
    message = str(error.value)
    assert message.startswith("queues.wrok: no task of the app uses queue 'wrok'")
    assert "processor 'main' polls work" in message
    assert "the app's other queues are other" in message


def test_every_problem_is_reported_at_once():
    with pytest.raises(AssignmentError) as error:
        assign(
            sampleapp.provider,
            processor="half",
            tasks=["record:job"],
            queue_settings={"wrok": QueueSettings(), "ohter": QueueSettings()},
        )
    message = str(error.value)
    assert "queue 'work' would be split" in message
    assert "queues.ohter:" in message and "queues.wrok:" in message


def test_resolve_checks_the_configuration_s_queues():
    config = ProcessorConfig.model_validate(
        processor_config(endpoint="http://127.0.0.1:1", prefix="p-", queues=MISSPELT)
    )
    with pytest.raises(AssignmentError, match=r"queues\.wrok: no task of the app uses"):
        resolve(config)


def test_settings_of_another_processor_s_queue_are_a_start_up_warning(caplog):
    config = ProcessorConfig.model_validate(
        processor_config(
            endpoint="http://127.0.0.1:1",
            prefix="p-",
            tasks=["other:job"],
            queues={
                "work": {"pollInterval": 1, "retryBackoffInitial": 0},
                "other": {"pollInterval": 1},
            },
        )
    )
    with caplog.at_level(logging.WARNING, logger="kube_taskqueue.assignment"):
        _, assignment = resolve(config)
    assert assignment.queues == ("other",)
    [warning] = assignment.warnings
    assert warning.startswith("queues.work: processor 'test' does not poll queue 'work'")
    assert "record:job, record_async:job" in warning
    assert "pollInterval, retryBackoffInitial there have no effect here" in warning
    assert [record.getMessage() for record in caplog.records] == [warning]


def test_a_url_alone_for_another_processor_s_queue_is_used_for_sending_so_no_warning():
    _, assignment = resolve(
        ProcessorConfig.model_validate(
            processor_config(
                endpoint="http://127.0.0.1:1",
                prefix="p-",
                tasks=["other:job"],
                queues={"work": {"url": "http://127.0.0.1:1/000000000000/p-work"}},
            )
        )
    )
    assert assignment.warnings == ()


def test_enqueue_sees_every_queue_of_the_app_so_no_warning():
    # `enqueue` resolves the whole app: the queues of every processor are "used" there.
    config = ProcessorConfig.model_validate(
        processor_config(endpoint="http://127.0.0.1:1", prefix="p-", tasks=["other:job"])
    )
    _, assignment = resolve(config.model_copy(update={"tasks": None}))
    assert assignment.warnings == ()


def _console(tmp_path: Path, *args: str, config: dict[str, Any]) -> subprocess.CompletedProcess:
    path = tmp_path / "processor.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [str(TASKQUEUE), *args, "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SUPPORT)},
        # Before the fix the processor started and ran on the defaults until killed.
        timeout=30,
        check=False,
    )


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = stderr.strip().splitlines()
    return line


def test_run_with_a_misspelt_queue_exits_2_with_one_line(tmp_path, sqs_endpoint, prefix, queues):
    queues.create("work")
    queues.create("other")
    config = processor_config(
        endpoint=sqs_endpoint,
        prefix=prefix,
        queues={**MISSPELT, "other": {"pollInterval": 1}},
    )
    result = _console(tmp_path, "run", config=config)
    assert result.returncode == 2, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith("kube-taskqueue: error: queues.wrok: no task of the app uses queue")
    assert "polls other, work" in line


def test_enqueue_with_a_misspelt_queue_exits_2_before_sending(tmp_path, sqs_endpoint, prefix):
    # The `url` of a misspelt entry would be ignored by enqueue too; nothing is sent.
    config = processor_config(endpoint=sqs_endpoint, prefix=prefix, queues=MISSPELT)
    result = _console(tmp_path, "enqueue", "--name", "record:job", '{"id": "x"}', config=config)
    assert result.returncode == 2, result.stderr
    assert "queues.wrok: no task of the app uses queue 'wrok'" in _one_line(result.stderr)
