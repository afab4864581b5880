"""The non-blocking log handler: a log call only queues its line (with the caller's context
and, for an exception, its traceback in full); one writer thread writes them, in order; when
the stream stops taking lines, lines below WARNING are dropped and counted, failures never."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from kube_taskqueue.logs import (
    SUCCESS,
    BackgroundHandler,
    JsonFormatter,
    log_context,
    setup_logging,
)


class BlockedStream(io.StringIO):
    """A stream whose writes wait until `release` is set (a full pipe nobody reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.writing = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        assert self.release.wait(60), "the test never released the stream"
        return super().write(text)


def logger_with(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.background.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.handlers[:] = [handler]
    return logger


def entries(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_keep_the_callers_context_and_order_and_a_failure_its_traceback():
    stream = io.StringIO()
    handler = BackgroundHandler(JsonFormatter(), stream=stream)
    logger = logger_with(handler)
    items = ["a"]
    with log_context(task="example:job", message_id="m-1"):
        logger.info("items %s", items, extra={"duration": 0.5})
        items.append("changed later")  # the line says what was true when it was logged
        try:
            raise LookupError("no such account")
        except LookupError:
            logger.exception("task failed")
    logger.info("outside")
    handler.flush()
    first, failure, outside = entries(stream)
    assert first["message"] == "items ['a']" and first["duration"] == 0.5
    assert (first["task"], first["message_id"]) == ("example:job", "m-1")
    assert failure["task"] == "example:job" and failure["level"] == "ERROR"
    assert failure["exception"].startswith("Traceback (most recent call last):")
    assert failure["exception"].endswith("LookupError: no such account")
    assert "task" not in outside
    handler.close()


def test_a_blocked_stream_does_not_block_the_caller_and_failures_are_never_dropped():
    stream = BlockedStream()
    handler = BackgroundHandler(JsonFormatter(), stream=stream, max_pending=5)
    logger = logger_with(handler)
    logger.info("first")  # the writer takes it and blocks in write
    assert stream.writing.wait(30)
    for index in range(20):  # all return while the write is still blocked
        logger.info("line %d", index)
    for index in range(3):
        logger.error("failure %d", index)
    assert not stream.release.is_set()
    stream.release.set()
    handler.flush()
    lines = entries(stream)
    messages = [line["message"] for line in lines]
    assert messages[0] == "first"
    assert [m for m in messages if m.startswith("failure")] == [f"failure {i}" for i in range(3)]
    kept = [m for m in messages if m.startswith("line ")]
    assert kept == [f"line {i}" for i in range(5)]  # the first five waited; the rest dropped
    [dropped] = [line for line in lines if "dropped" in line["message"]]
    assert dropped["level"] == "WARNING"
    assert dropped["message"].startswith("15 log lines below WARNING were dropped")
    handler.close()


def test_close_writes_everything_queued():
    stream = io.StringIO()
    handler = BackgroundHandler(JsonFormatter(), stream=stream)
    logger = logger_with(handler)
    for index in range(1000):
        logger.info("line %d", index)
    handler.close()
    assert [line["message"] for line in entries(stream)] == [f"line {i}" for i in range(1000)]
    logger.error("after close, at exit")  # no writer left: written at once
    assert entries(stream)[-1]["message"] == "after close, at exit"


@pytest.mark.parametrize(("json_lines", "shown"), [(True, False), (False, True)])
def test_successes_are_debug_lines_that_text_lines_show_at_any_level(json_lines, shown):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("INFO", json_lines=json_lines)
        assert logging.getLogger(SUCCESS).isEnabledFor(logging.DEBUG) is shown
        assert (
            logging.getLogger("kube_taskqueue.runtime.workers").isEnabledFor(logging.DEBUG) is False
        )
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger(SUCCESS).setLevel(logging.NOTSET)
