"""How a held message ends: deleted, retried after its backoff, or given back at once.

Every outcome first releases the message from the in-flight table, and is sent only when
that release was this caller's: a message gets one outcome per receive, whichever of a
worker, a poller at shutdown or a forced stop gets there first, and the heartbeat never
renews it afterwards. The acker sends the calls; nothing here talks to SQS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from kube_taskqueue.config import QueueSettings
from kube_taskqueue.runtime.acker import Acker, Entry
from kube_taskqueue.runtime.backoff import retry_delay_seconds
from kube_taskqueue.runtime.inflight import Held, InFlight
from kube_taskqueue.runtime.metrics import Metrics

log = logging.getLogger(__name__)


class Outcomes:
    def __init__(
        self,
        *,
        in_flight: InFlight,
        acker: Acker,
        metrics: Metrics,
        queue_settings: Mapping[str, QueueSettings],
    ) -> None:
        self._in_flight = in_flight
        self._acker = acker
        self._metrics = metrics
        self._queue_settings = queue_settings

    def delete(self, held: Held) -> bool:
        """Delete a finished message; False when it was settled already (nothing sent)."""
        if not self._settle(held):
            return False
        self._acker.delete(queue_url=held.queue_url, entry=_entry(held))
        return True

    def retry(self, held: Held) -> bool:
        """Leave a failed message for redelivery after its backoff, on the same SQS message."""
        if not self._settle(held):
            return False
        settings = self._queue_settings[held.message.queue]
        delay = retry_delay_seconds(
            receive_count=held.message.receive_count,
            initial=settings.retry_backoff_initial,
            maximum=settings.retry_backoff_max,
        )
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=delay))
        self._metrics.queue(held.message.queue).retried.inc()
        return True

    def unroutable(self, held: Held) -> bool:
        """Leave a message for a task this processor does not run for redelivery after the
        queue's unknownTaskDelay (a pod of a newer revision may run it)."""
        if not self._settle(held):
            return False
        delay = self._queue_settings[held.message.queue].unknown_task_delay
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=delay))
        return True

    def hold(self, held: Held, seconds: int) -> bool:
        """Hide a message that is not due yet (not a failure, not a retry)."""
        if not self._settle(held):
            return False
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=seconds))
        self._metrics.deferred.labels(queue=held.message.queue, hop="hold").inc()
        return True

    def resent(self, held: Held) -> bool:
        """A message not due yet whose fresh copy is sent: delete this one."""
        if not self.delete(held):
            return False
        self._metrics.deferred.labels(queue=held.message.queue, hop="resend").inc()
        return True

    def postpone(self, held: Held, *, seconds: int, task: str, reason: str) -> bool:
        """Put back a message whose task is at its concurrency or rate limit, for a moment
        (not a failure: no backoff, no error handler)."""
        if not self._settle(held):
            return False
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=seconds))
        self._metrics.postponed.labels(queue=held.message.queue, task=task, reason=reason).inc()
        return True

    def give_back(self, held: Held) -> bool:
        """Make a message visible again at once (visibility 0), for another worker or replica."""
        if not self._settle(held):
            return False
        self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=0))
        self._metrics.queue(held.message.queue).returned.inc()
        return True

    def give_back_all(self) -> list[Held]:
        """Give back every held message, running or not (a forced stop)."""
        released = self._in_flight.release_all()
        for held in released:
            self._metrics.queue(held.message.queue).in_flight.dec()
            self._acker.set_visibility(queue_url=held.queue_url, entry=_entry(held, visibility=0))
            self._metrics.queue(held.message.queue).returned.inc()
        return released

    def _settle(self, held: Held) -> bool:
        released = self._in_flight.release(held.message.receipt_handle)
        if released is None:
            log.debug(
                "message %s was already settled; nothing more is sent for it",
                held.message.message_id,
                extra={"message_id": held.message.message_id, "queue": held.message.queue},
            )
            return False
        self._metrics.queue(held.message.queue).in_flight.dec()
        return True


def _entry(held: Held, *, visibility: int = 0) -> Entry:
    return Entry(
        receipt=held.message.receipt_handle,
        message_id=held.message.message_id,
        queue=held.message.queue,
        visibility_seconds=visibility,
    )
