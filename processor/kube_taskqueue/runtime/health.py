"""The HTTP endpoint: `/healthz` (alive, not stuck), `/readyz` (polling), `/metrics`."""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

#: A check returns the problems it sees; none means healthy.
Check = Callable[[], list[str]]


class HttpBindError(OSError):
    """The endpoint cannot listen where it was told to (port taken, host not local...).

    Raised before anything starts, so an entry point can name the setting to change
    instead of showing a traceback.
    """

    def __init__(self, *, host: str, port: int, cause: OSError) -> None:
        self.host = host
        self.port = port
        self.reason = (cause.strerror or str(cause)).rstrip(".")
        #: True when the address is fine but the port is taken: change the port, not the host.
        self.port_in_use = cause.errno == errno.EADDRINUSE
        super().__init__(cause.errno, f"cannot listen on {host}:{port}: {self.reason}")


class HealthServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry,
        liveness: Check,
        readiness: Check,
    ) -> None:
        routes: dict[str, Check] = {"/healthz": liveness, "/readyz": readiness}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path in routes:
                    problems = routes[path]()
                    body = json.dumps({"ok": not problems, "problems": problems}).encode()
                    self._send(503 if problems else 200, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the task logs

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as error:
            raise HttpBindError(host=host, port=port, cause=error) from error
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="taskqueue-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
