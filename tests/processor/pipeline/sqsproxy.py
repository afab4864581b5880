"""An HTTP proxy in front of the SQS server that records every call and can hold some.

Unlike tests/support/proxy.py (bytes only), it reads each request: its action (botocore's JSON
protocol names it in X-Amz-Target), its queue and entries, when it arrived, when it reached
the server and when it was answered. A `Hold` rule keeps a matching call back: until its
condition holds (then it goes on to the server), or until the client gives up on it (then it
is dropped, as a request lost on the way would be).
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import json
import select
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Headers of one hop that the proxy sets itself.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclasses.dataclass
class Call:
    number: int
    action: str
    body: dict[str, Any]
    arrived: float
    #: Order in which calls reached the server (None: held, dropped, or not yet).
    forwarded: int | None = None
    answered: float | None = None
    held: bool = False
    dropped: bool = False

    @property
    def queue_url(self) -> str:
        return str(self.body.get("QueueUrl", ""))

    @property
    def visibilities(self) -> dict[str, int]:
        """Receipt handle → VisibilityTimeout of a ChangeMessageVisibility(Batch) call."""
        entries = self.body.get("Entries") or [self.body]
        return {
            str(e["ReceiptHandle"]): int(e["VisibilityTimeout"])
            for e in entries
            if "ReceiptHandle" in e and "VisibilityTimeout" in e
        }


@dataclasses.dataclass
class Hold:
    """Hold up to `times` calls that `match`, until `until(call)` (never, by default)."""

    match: Callable[[Call], bool]
    until: Callable[[Call], bool] = lambda _call: False
    times: int = 1
    on_hold: Callable[[Call], None] | None = None
    calls: list[Call] = dataclasses.field(default_factory=list)


class SqsProxy:
    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._changed = threading.Condition()  # an RLock: `until` may look at the calls
        self._numbers = itertools.count(1)
        self._forward_order = itertools.count(1)
        self._holds: list[Hold] = []
        self._closed = False
        self.calls: list[Call] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects

            def do_POST(self) -> None:
                proxy._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self, rule: Hold) -> Hold:
        with self._changed:
            self._holds.append(rule)
        return rule

    def of(self, action: str) -> list[Call]:
        with self._changed:
            return [call for call in self.calls if call.action == action]

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # -- one request -------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        target = handler.headers.get("X-Amz-Target", "")
        if target:
            action = target.rsplit(".", 1)[-1]
            body = json.loads(raw or b"{}")
        else:  # the query protocol
            fields = urllib.parse.parse_qs(raw.decode())
            action = fields.get("Action", ["Other"])[0]
            body = {key: values[0] for key, values in fields.items()}
        with self._changed:
            call = Call(next(self._numbers), action, body, time.monotonic())
            self.calls.append(call)
            rule = next((r for r in self._holds if r.times > 0 and r.match(call)), None)
            if rule is not None:
                rule.times -= 1
                rule.calls.append(call)
                call.held = True
            self._changed.notify_all()
        if rule is not None:
            if rule.on_hold is not None:
                rule.on_hold(call)
            if not self._wait(rule, call, handler.connection):
                with self._changed:
                    call.dropped = True
                    self._changed.notify_all()
                handler.close_connection = True
                return
        self._forward(handler, call, raw)

    def _wait(self, rule: Hold, call: Call, client: socket.socket) -> bool:
        """Hold `call` until its rule lets it go (True) or its client leaves (False)."""
        with self._changed:
            while not rule.until(call):
                if self._closed or _gone(client):
                    return False
                self._changed.wait(0.02)
        return True

    def _forward(self, handler: BaseHTTPRequestHandler, call: Call, raw: bytes) -> None:
        upstream = http.client.HTTPConnection("127.0.0.1", self._target, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_HEADERS}
            with self._changed:
                call.forwarded = next(self._forward_order)
            upstream.request("POST", handler.path, body=raw, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        with self._changed:
            call.answered = time.monotonic()
            self._changed.notify_all()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_HEADERS:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (a timed-out call, a killed processor) is part of the tests.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _gone(client: socket.socket) -> bool:
    """The client closed its end (it timed out and dropped the connection)."""
    readable, _, _ = select.select([client], [], [], 0)
    if not readable:
        return False
    try:
        return client.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
