"""A loopback HTTP proxy that counts SQS API calls by action, whatever the client
(botocore's JSON protocol, or the query protocol kombu uses)."""

from __future__ import annotations

import collections
import contextlib
import re
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from proxy import LoopbackProxy, pipe

_TARGET = re.compile(rb"x-amz-target:\s*AmazonSQS\.(\w+)", re.IGNORECASE)
_ACTION = re.compile(rb"Action=(\w+)")
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


class CountingProxy(LoopbackProxy):
    def __init__(self, target_port: int) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        super().__init__(target_port)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def total(self, prefix: str = "") -> int:
        with self._lock:
            return sum(v for k, v in self.counts.items() if k.startswith(prefix))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    def _requests(self, source: socket.socket, sink: socket.socket) -> None:
        """Forward client → server, parsing each request's head to count it."""
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = source.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length_match = _LENGTH.search(head)
                length = int(length_match.group(1)) if length_match else 0
                while len(rest) < length:
                    data = source.recv(65536)
                    if not data:
                        return
                    rest += data
                body, buffer = rest[:length], rest[length:]
                match = _TARGET.search(head) or _ACTION.search(head.split(b"\r\n", 1)[0] + body)
                action = match.group(1).decode() if match else "Other"
                with self._lock:
                    self.counts[action] += 1
                sink.sendall(head + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
