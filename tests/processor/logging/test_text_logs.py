"""Text logs (dev mode, TASKQUEUE_LOG_FORMAT=text): the handler's context on every line, and
a failed attempt as one line (the traceback at DEBUG, and always in JSON lines)."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest
from kube_taskqueue.logs import JsonFormatter, TextFormatter, log_context, setup_logging


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    entry = logging.LogRecord(
        "kube_taskqueue.runtime.workers", logging.INFO, __file__, 1, message, args, exc_info
    )
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


def failing() -> tuple:
    try:
        raise LookupError("account 'unknown' does not exist")
    except LookupError:
        return sys.exc_info()


HANDLER = {
    "queue": "shared",
    "message_id": "m-1",
    "receive_count": 1,
    "task": "example:job",
    "trace_id": "0123456789abcdef",
}


def test_a_line_names_the_task_and_the_message_then_the_extra_fields():
    with log_context(**HANDLER):
        line = TextFormatter().format(record("task done", duration=0.003))
    assert line.endswith(
        "INFO kube_taskqueue.runtime.workers: task done task=example:job message=m-1 duration=0.003"
    )


def test_a_retry_shows_its_attempt_and_small_durations_stay_readable():
    with log_context(**{**HANDLER, "receive_count": 3}):
        line = TextFormatter().format(record("task done", duration=0.00002))
    assert line.endswith("task done task=example:job message=m-1 attempt=3 duration=0.00002")


def test_a_users_own_context_fields_are_shown_and_quoted_when_needed():
    with log_context(**HANDLER), log_context(account="acme corp"):
        line = TextFormatter().format(record("report built"))
    assert line.endswith('report built task=example:job message=m-1 account="acme corp"')


def test_a_line_outside_a_handler_has_no_fields():
    assert (
        TextFormatter()
        .format(record("processor %r started", "main"))
        .endswith("kube_taskqueue.runtime.workers: processor 'main' started")
    )


def test_a_failed_attempt_is_one_line_with_where_it_was_raised():
    error = failing()
    with log_context(**HANDLER):
        line = TextFormatter().format(
            record("task failed: %s: %s", "LookupError", error[1], exc_info=error, duration=0.1)
        )
    assert "\n" not in line
    assert line.count("LookupError") == 1  # the message says it already
    assert "task failed: LookupError: account 'unknown' does not exist task=example:job" in line
    assert re.search(r" duration=0\.1 raised_at=\S*test_text_logs\.py:\d+$", line), line


def test_an_exception_the_message_does_not_name_is_added_as_a_field():
    error = failing()
    line = TextFormatter().format(record("unexpected error", exc_info=error))
    assert "error=\"LookupError: account 'unknown' does not exist\"" in line
    assert "\n" not in line


def test_with_tracebacks_the_traceback_follows_the_line():
    error = failing()
    line = TextFormatter(tracebacks=True).format(record("task failed", exc_info=error))
    first, *rest = line.splitlines()
    assert first.endswith("task failed")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "LookupError: account 'unknown' does not exist"


def test_json_lines_always_carry_the_traceback():
    entry = json.loads(JsonFormatter().format(record("task failed", exc_info=failing())))
    assert entry["exception"].startswith("Traceback (most recent call last):")


@pytest.mark.parametrize(("level", "tracebacks"), [("DEBUG", True), ("INFO", False)])
def test_setup_logging_shows_tracebacks_in_text_at_debug_only(level, tracebacks):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging(level, json_lines=False)
        [handler] = root.handlers
        line = handler.format(record("task failed", exc_info=failing()))
        assert ("Traceback" in line) is tracebacks
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
