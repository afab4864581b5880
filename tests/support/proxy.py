"""A loopback TCP proxy that can drop connections on demand: an SQS endpoint outage."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class LoopbackProxy:
    """Forwards 127.0.0.1:<port> to a target port on loopback, one pair of threads per
    connection. Subclasses decide which connections to take and how to carry them; they set
    their own attributes before calling `__init__`, which starts accepting."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._admit():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            self._carry(client, upstream)

    def _admit(self) -> bool:
        return True

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


class OutageProxy(LoopbackProxy):
    """`down()` closes every connection and refuses new ones until `up()`."""

    def __init__(self, target_port: int) -> None:
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        super().__init__(target_port)

    def down(self) -> None:
        self._up.clear()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.down()
        self._listener.close()

    def _admit(self) -> bool:
        return self._up.is_set()

    def _carry(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            self._open.update({client, upstream})
        threading.Thread(target=pipe, args=(client, upstream, self._forget), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client, self._forget), daemon=True).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(sockets)


def pipe(
    source: socket.socket,
    sink: socket.socket,
    on_close: Callable[[socket.socket, socket.socket], None] | None = None,
) -> None:
    """Copy bytes one way until either side closes, then close both."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()
        if on_close is not None:
            on_close(source, sink)
