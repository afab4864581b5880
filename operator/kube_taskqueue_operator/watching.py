"""List-then-watch of one kind in one scope, on a thread of its own.

The claim index and the policy index are fed this way rather than by kopf: they must be
complete on every replica (active or standby) and before kopf starts, and their threads never
wait for kopf's executor, which reconciles may hold while SQS hangs. A watch that ends or fails
(the API server restarting, 410 Gone) lists again, so nothing is missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes

log = logging.getLogger(__name__)

#: `list_objects(**kwargs)`: a kubernetes client list call (also used by the watch).
Lister = Callable[..., Any]


class ListWatch:
    #: Seconds a watch request stays open before it is renewed (server-side timeout).
    WATCH_SECONDS = 300
    #: Seconds between attempts after an error (the API server restarting, say).
    RETRY_SECONDS = 2.0

    def __init__(
        self,
        *,
        name: str,
        list_objects: Lister,
        on_list: Callable[[list[Mapping[str, Any]]], None],
        on_event: Callable[[str, Mapping[str, Any]], None],
        initial_delay: float = 0,
    ) -> None:
        """`on_list` gets every full list (the first, and each after a restart); `on_event`
        gets ("ADDED" | "MODIFIED" | "DELETED", object) for each change in between."""
        self._name = name
        self._list = list_objects
        self._on_list = on_list
        self._on_event = on_event
        self._initial_delay = initial_delay
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        if self._stopped.wait(self._initial_delay):
            return
        while not self._stopped.is_set():
            try:
                listed = self._list(_request_timeout=60)
                self._on_list(list(_items(listed)))
                self._watch(str(_metadata(listed)["resourceVersion"]))
            except Exception as error:
                if self._stopped.is_set():
                    return
                log.info("%s watch restarts: %s", self._name, short(error))
                time.sleep(self.RETRY_SECONDS)

    def _watch(self, version: str) -> None:
        while not self._stopped.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            for event in watch.stream(  # type: ignore[no-untyped-call]
                self._list,
                resource_version=version,
                timeout_seconds=self.WATCH_SECONDS,
                allow_watch_bookmarks=True,
                _request_timeout=self.WATCH_SECONDS + 30,
            ):
                kind, body = event["type"], event["object"]
                if kind == "ERROR":
                    raise RuntimeError(f"watch error: {_get(body, 'message') or body}")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._on_event(kind, _plain(body))
                version = watch.resource_version or version
                if self._stopped.is_set():
                    return


#: Only its serializer is used (no connection is made through it).
_SERIALIZER = kubernetes.client.ApiClient()


def _plain(body: Any) -> Mapping[str, Any]:
    """Custom objects come as dicts, core objects as models: both as plain dicts."""
    if isinstance(body, Mapping):
        return body
    converted: Mapping[str, Any] = _SERIALIZER.sanitize_for_serialization(body)  # type: ignore[no-untyped-call]
    return converted


def _items(listed: Any) -> list[Mapping[str, Any]]:
    if isinstance(listed, Mapping):
        return list(listed.get("items", []))
    return [_plain(item) for item in listed.items or []]


def _metadata(listed: Any) -> Mapping[str, Any]:
    if isinstance(listed, Mapping):
        return dict(listed["metadata"])
    return {"resourceVersion": listed.metadata.resource_version}


def _get(body: Any, key: str) -> Any:
    return body.get(key) if isinstance(body, Mapping) else getattr(body, key, None)


def short(error: Exception) -> str:
    if isinstance(error, kubernetes.client.ApiException):
        return f"{error.status} {error.reason}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
