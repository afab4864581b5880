"""Logs: JSON lines (the processor's default) or text lines for a terminal (dev mode), and
the log context (task, message, trace id) of the running handler.

The context lives in a contextvar, so a handler's own log lines carry its task, message id
and trace id, and a message it sends inherits its trace id. Both formats show it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import traceback
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "taskqueue_log_context", default=_EMPTY
)

#: LogRecord attributes that are not user fields.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def current_context() -> Mapping[str, Any]:
    return _context.get()


def current_trace_id() -> str | None:
    value = _context.get().get("trace_id")
    return str(value) if value else None


def new_trace_id() -> str:
    return uuid.uuid4().hex


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line (and the trace id to every send) within the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context.get())
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: Context fields a text line leaves out (JSON lines keep them): a trace id is for searching
#: logs, not for reading them, and the queue follows from the task.
_TEXT_HIDDEN = frozenset({"queue", "trace_id"})
#: Shorter names for a text line.
_TEXT_NAMES = {"message_id": "message", "receive_count": "attempt"}
#: What a reader looks for first comes first; other fields follow in their own order.
_TEXT_FIRST = ("task", "message_id", "receive_count")


class TextFormatter(logging.Formatter):
    """Lines for a terminal: time, level, logger and message, then the context and `extra`
    fields as `key=value` (`task done task=example:job message=<id> duration=0.003`).

    An exception is shown as one line (its type, its text, where it was raised) unless
    `tracebacks` is set, as `setup_logging` does at DEBUG: a task failing on every attempt
    would otherwise bury everything else under its traceback. JSON lines always carry it.
    """

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        parts = [self.formatMessage(record)]
        fields = {**_context.get(), **_extra_fields(record)}
        order = [key for key in _TEXT_FIRST if key in fields]
        order += [key for key in fields if key not in _TEXT_FIRST]
        parts.extend(_text_field(key, fields[key]) for key in order if _shown(key, fields[key]))
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and not self._tracebacks:
            parts.extend(_brief_exception(error, record.message))
        line = " ".join(parts)
        if error is not None and self._tracebacks and record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED}


def _shown(key: str, value: Any) -> bool:
    if value is None or key in _TEXT_HIDDEN:
        return False
    # The first attempt is the common case; only a retry is worth a field.
    return not (key == "receive_count" and value == 1)


def _text_field(key: str, value: Any) -> str:
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        text = value if plain else json.dumps(value)
    elif isinstance(value, list | tuple | dict):
        text = json.dumps(value, default=str)
    elif isinstance(value, float):
        # Durations: 0.00002, not 2e-05.
        text = f"{value:.6f}".rstrip("0").rstrip(".") or "0"
    else:
        text = str(value)
    return f"{_TEXT_NAMES.get(key, key)}={text}"


def _brief_exception(error: BaseException, message: str) -> list[str]:
    """The exception as fields: its text (unless the message already says it) and where it
    was raised, the one frame a reader needs to find it."""
    summary = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    fields = [] if summary in message else [_text_field("error", summary)]
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        fields.append(
            _text_field("raised_at", f"{_short_path(frames[-1].filename)}:{frames[-1].lineno}")
        )
    return fields


def _short_path(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return filename


def setup_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Configure the root logger once, at an entry point."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(tracebacks=root.level <= logging.DEBUG))
    root.handlers[:] = [handler]
    # botocore logs every retry at DEBUG/INFO; our own lines say what matters.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
    # moto's embedded server (dev mode) logs every request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
