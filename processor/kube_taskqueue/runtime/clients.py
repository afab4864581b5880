"""The processor's SQS clients, sized and bounded for what calls them.

Two clients, so one stuck call cannot starve the other kind:
- the main client (receives, queue look-ups, the acker's deletes and visibility changes),
  whose connection pool holds as many connections as those threads can have calls open at
  once; a smaller pool makes urllib3 open and throw away a connection per call beyond it
  ("Connection pool is full, discarding connection");
- the renewal client of the heartbeat, whose calls are bounded well below half the shortest
  visibility window and never retried by botocore: a hung ChangeMessageVisibilityBatch costs
  one short timeout, after which the next beat tries again with time to spare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import boto3
import botocore.config

from kube_taskqueue.sqs import SqsClient

#: The shortest bound of a renewal call, in seconds: below it an ordinary round trip to a
#: distant region (TLS handshake included) would count as hung.
MIN_RENEWAL_TIMEOUT_SECONDS = 1.0
#: A renewal call gets this share of the shortest window. Renewals start at half the
#: window and the heartbeat beats every sixth of it (at most 5 s), so after a call that hung
#: for its whole bound the next beats still come before the window ends.
RENEWAL_SHARE_OF_WINDOW = 1 / 10


def receive_loops(*, workers: int, max_batch_size: int) -> int:
    """Receive loops of one queue: one per batch its share of the workers can take.

    Any queue may use every free worker (an idle one takes none), so it gets enough loops
    for all of them; a receive round trip then does not cap a busy queue's throughput.
    """
    return max(1, math.ceil(workers / max_batch_size))


def connection_pool_size(*, loops: Sequence[int], workers: int) -> int:
    """Calls the main client can have open at once.

    Each receive loop makes one call at a time: a receive, which holds at least one free
    worker (so at most `workers` of them are open together), or a queue look-up (one per
    queue at a time, before it receives). The acker adds one.
    """
    return min(sum(loops), workers + len(loops)) + 1


def renewal_timeout_seconds(*, shortest_visibility: int, call_timeout: float) -> float:
    """The bound of one renewal call (connect and answer together)."""
    share = shortest_visibility * RENEWAL_SHARE_OF_WINDOW
    return max(MIN_RENEWAL_TIMEOUT_SECONDS, min(call_timeout, share))


def make_renewal_client(*, region: str, endpoint: str | None, timeout: float) -> SqsClient:
    """The heartbeat's client: one connection (one thread calls it), bounded, no retries."""
    config = botocore.config.Config(
        region_name=region,
        # Half each, so connecting and waiting for the answer together stay within `timeout`.
        connect_timeout=timeout / 2,
        read_timeout=timeout / 2,
        # A retry would double the bound; the heartbeat's next beat is the retry.
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=1,
        parameter_validation=False,  # every request is built here, and tested
    )
    client = boto3.session.Session().client("sqs", endpoint_url=endpoint or None, config=config)
    # boto3's generated signatures are stricter than the protocol's; the calls match.
    return cast(SqsClient, client)
