"""Structured logs: one JSON object per line, with the handler's context and extra fields."""

from __future__ import annotations

import json
import logging

from kube_taskqueue.logs import JsonFormatter, current_trace_id, log_context


def format_record(message: str, **extra) -> dict:
    record = logging.LogRecord("taskqueue.test", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return json.loads(JsonFormatter().format(record))


def test_a_line_carries_the_handler_context_and_extra_fields():
    with log_context(task="example:job", message_id="m-1", receive_count=2, trace_id="t-9"):
        entry = format_record("task done", duration=0.25)
        assert current_trace_id() == "t-9"
    assert entry["message"] == "task done"
    assert entry["level"] == "INFO" and entry["logger"] == "taskqueue.test"
    assert (entry["task"], entry["message_id"], entry["receive_count"], entry["trace_id"]) == (
        "example:job",
        "m-1",
        2,
        "t-9",
    )
    assert entry["duration"] == 0.25
    assert entry["time"].endswith("+00:00")


def test_context_ends_with_its_block():
    with log_context(task="a"):
        pass
    assert "task" not in format_record("outside")
    assert current_trace_id() is None
