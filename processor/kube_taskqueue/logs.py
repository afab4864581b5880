"""Logs: JSON lines (the processor's default) or text lines for a terminal (dev mode), and
the log context (task, message, trace id) of the running handler.

The context lives in a contextvar, so a handler's own log lines carry its task, message id
and trace id, and a message it sends inherits its trace id. Both formats show it.

Writing is non-blocking: `setup_logging` installs a `BackgroundHandler`, whose `emit` only
captures the record (its message, its context and, for an exception, the full traceback text)
and queues it; one writer thread formats the queued lines and writes them in batches. A worker
never waits for stderr (a full pipe, a slow terminal) and never gives up the GIL on a write,
which under load cost it a wait for the GIL back on every line. Every line is written by
`flush()`, which `logging.shutdown` (at exit) calls. If stderr stops taking lines, below
WARNING they are dropped after `max_pending` waiting (and the count is written when it takes
lines again); WARNING and above, failures among them, are always kept.

A task that succeeded is logged at DEBUG, on the `kube_taskqueue.tasks` logger (`SUCCESS`):
at thousands of messages a second one INFO line each took 29 % of the workers' time in a
profile (bench/NOTES.md), and the counts and durations are in /metrics
(`taskqueue_messages_processed_total`, `taskqueue_task_duration_seconds`). Text lines, for a
person at a terminal, show them whatever the level; so does `logLevel: DEBUG`. Failures are
logged in full at ERROR, the traceback in every JSON line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "taskqueue_log_context", default=_EMPTY
)

#: The logger of the one line per task run that succeeded ("task done"), logged at DEBUG.
SUCCESS = "kube_taskqueue.tasks"
#: Where `BackgroundHandler` keeps the context of the thread that logged a record.
_CONTEXT_ATTRIBUTE = "taskqueue_context"
#: LogRecord attributes that are not user fields.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    _CONTEXT_ATTRIBUTE,
}
#: One encoder for every line: `json.dumps` with an argument builds a new one per call.
_ENCODE = json.JSONEncoder(default=str).encode


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


def _record_context(record: logging.LogRecord) -> Mapping[str, Any]:
    """The log context of the thread that logged `record` (kept by `BackgroundHandler`, which
    formats in another thread), or the current one."""
    context: Mapping[str, Any] | None = record.__dict__.get(_CONTEXT_ATTRIBUTE)
    return _context.get() if context is None else context


class _UtcClock:
    """ISO 8601 UTC times to the millisecond (`2026-01-02T03:04:05.678+00:00`), as a datetime
    formats them, the second's text made once per second rather than a datetime per line."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a race makes the same text twice: harmless
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._text}.{int((created - second) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and `extra` fields."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _UtcClock()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._clock.format(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_record_context(record))
        entry.update(_extra_fields(record))
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return _ENCODE(entry)


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
        fields = {**_record_context(record), **_extra_fields(record)}
        order = [key for key in _TEXT_FIRST if key in fields]
        order += [key for key in fields if key not in _TEXT_FIRST]
        parts.extend(_text_field(key, fields[key]) for key in order if _shown(key, fields[key]))
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and not self._tracebacks:
            parts.extend(_brief_exception(error, record.message))
        line = " ".join(parts)
        if error is not None and self._tracebacks and record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = record.__dict__
    if not fields.keys() - _RESERVED:  # the common case: no extra fields
        return {}
    return {k: v for k, v in fields.items() if k not in _RESERVED}


class BackgroundHandler(logging.Handler):
    """Queue records for one writer thread, which formats them and writes them in batches.

    `emit` runs in the logging thread and does only what must happen there: the message is
    rendered (its arguments may change later), the thread's log context kept and an exception's
    traceback formatted in full. `flush()` returns once every line logged before it is written.
    """

    #: Most lines written with one call.
    _BATCH = 512

    def __init__(
        self,
        formatter: logging.Formatter,
        *,
        stream: IO[str] | None = None,
        max_pending: int = 10_000,
    ) -> None:
        """`stream` defaults to `sys.stderr` as it is at each write."""
        super().__init__()
        self.setFormatter(formatter)
        self._stream = stream
        self._max_pending = max_pending
        self._queue: queue.SimpleQueue[logging.LogRecord | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._dropped = 0
        self._reported = 0
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def handle(self, record: logging.LogRecord) -> bool:
        # Without `Handler.handle`'s lock: the queue is thread-safe, and the lock was one
        # more wait per line for every worker.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.__dict__[_CONTEXT_ATTRIBUTE] = _context.get()
            record.message = record.getMessage()
            record.msg, record.args = record.message, None
            if record.exc_info and not record.exc_text:
                # In full, now: the writer may run after the exception's frames are gone.
                record.exc_text = (self.formatter or logging.Formatter()).formatException(
                    record.exc_info
                )
        except Exception:
            self.handleError(record)
            return
        if self._closed:  # after close (at exit): written at once, as a StreamHandler would
            try:
                self._write(self.format(record) + "\n")
            except Exception:
                self.handleError(record)
            return
        if record.levelno < logging.WARNING and self._queue.qsize() >= self._max_pending:
            self._dropped += 1  # an approximate count under threads is enough
            return
        self._start()
        self._queue.put(record)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout` s) until every line queued so far is written."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout)

    def close(self) -> None:
        """Write what is queued, then end the writer thread."""
        thread = self._thread
        self._closed = True
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(5.0)
        super().close()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="taskqueue-log-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < self._BATCH:
                    batch.append(self._queue.get_nowait())
            lines: list[str] = []
            written: list[threading.Event] = []
            stop = False
            for item in batch:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    written.append(item)
                else:
                    try:
                        lines.append(self.format(item))
                    except Exception:
                        self.handleError(item)
            dropped = self._dropped - self._reported
            if dropped > 0:
                self._reported += dropped
                lines.append(self._dropped_line(dropped))
            if lines:
                self._write("\n".join(lines) + "\n")
            for event in written:
                event.set()
            if stop:
                return

    def _dropped_line(self, count: int) -> str:
        record = logging.LogRecord(
            __name__,
            logging.WARNING,
            __file__,
            0,
            "%d log lines below WARNING were dropped: the log stream was not taking lines",
            (count,),
            None,
        )
        record.__dict__[_CONTEXT_ATTRIBUTE] = _EMPTY
        return self.format(record)

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to write to
            pass


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
    """Configure the root logger once, at an entry point: one `BackgroundHandler` writing to
    stderr. Text lines also show every task that succeeded (`SUCCESS`, DEBUG otherwise)."""
    root = logging.getLogger()
    root.setLevel(level)
    formatter: logging.Formatter = (
        JsonFormatter() if json_lines else TextFormatter(tracebacks=root.level <= logging.DEBUG)
    )
    handler = BackgroundHandler(formatter)
    for previous in root.handlers:
        if isinstance(previous, BackgroundHandler):
            previous.close()  # its lines are written first
    root.handlers[:] = [handler]
    # A person at a terminal (dev mode) follows each task; a processor's JSON lines keep
    # them at DEBUG (counts and durations are in /metrics).
    logging.getLogger(SUCCESS).setLevel(logging.NOTSET if json_lines else logging.DEBUG)
    # botocore logs every retry at DEBUG/INFO; our own lines say what matters.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
    # moto's embedded server (dev mode) logs every request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
