"""Failpoints: named places in a reconcile where the operator can be made to crash, so the
reliability suite proves that a restart converges from each of them (as etcd's failpoints do).
Off unless TASKQUEUE_FAILPOINT names one; never set in production."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

AFTER_QUEUES = "after-queues"
AFTER_CONFIGMAP = "after-configmap"
BEFORE_STATUS = "before-status"
ALL = (AFTER_QUEUES, AFTER_CONFIGMAP, BEFORE_STATUS)


class Failpoints:
    def __init__(self, active: str | None = None) -> None:
        if active and active not in ALL:
            raise ValueError(f"unknown failpoint {active!r} (known: {', '.join(ALL)})")
        self._active = active

    def hit(self, name: str) -> None:
        if name == self._active:
            log.critical("failpoint %s: crashing on purpose", name)
            os._exit(70)
