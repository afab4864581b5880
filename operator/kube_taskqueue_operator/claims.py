"""Who owns which SQS queue: a claim index kept from a watch of TaskQueues.

The admission webhook and the reconciler both ask it. Each TaskQueue claims the normalised
identities of its queues and dead-letter queues (`QueueIdentity`: region, endpoint, name, with
endpoint aliases of AWS folded together). A queue claimed by several TaskQueues belongs to the
senior claimant: the one stored first (`creationTimestamp`, then `uid` to settle a tie within
the same second). The rule is not symmetric: the owner keeps its queue, only juniors are
refused (admission) or Invalid (reconcile), so a clash that got past admission (two creates at
once, a cluster without the webhook) never punishes the owner.

The index is fed by its own watch (`ClaimWatcher`, a thread: list, then watch from the list's
resourceVersion, relist on 410), not by kopf's indexes, so it is complete on every replica,
active or standby, and it knows when it is complete: until the first list is in, admission is
refused and `/readyz` fails. Bodies are parsed once per change, so an admission costs O(its
own queues), not a parse of every other TaskQueue.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import kubernetes

from kube_taskqueue_operator.resource.identity import (
    QueueIdentity,
    identities,
)
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION, TaskQueue
from kube_taskqueue_operator.resource.validation import InvalidDocument
from kube_taskqueue_operator.watching import ListWatch

log = logging.getLogger(__name__)

#: Seniority of a stored object: earlier creationTimestamp first, then uid. RFC 3339 times
#: in UTC with a fixed format compare as strings.
Rank = tuple[str, str]


def rank(metadata: Mapping[str, Any]) -> Rank | None:
    """The seniority of a stored object; None for one not stored yet (an admission of a
    CREATE), which is junior to every stored claimant."""
    created = metadata.get("creationTimestamp")
    uid = metadata.get("uid")
    if not created or not uid:
        return None
    return (str(created), str(uid))


def senior(candidate: Rank, than: Rank | None) -> bool:
    return than is None or candidate < than


@dataclasses.dataclass(frozen=True, kw_only=True)
class Claimant:
    key: str
    """namespace/name"""
    rank: Rank | None
    queues: frozenset[QueueIdentity]
    body: Mapping[str, Any]
    """metadata and spec, for the reconciler's cross-resource check."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Clash:
    queue: QueueIdentity
    owner: str
    """namespace/name of the senior claimant."""
    asking: str
    """namespace/name of the TaskQueue being checked."""

    @property
    def message(self) -> str:
        """Names the owner only when it is in the asker's namespace: the message goes to
        whoever applied the resource, who may have no right to see other namespaces."""
        if _ns(self.owner) == _ns(self.asking):
            owner = f"TaskQueue {self.owner}"
        else:
            owner = "a TaskQueue in another namespace"
        return (
            f"{self.queue} is also declared by {owner}; a physical queue belongs to one "
            "resource (the first created keeps it)"
        )


Resolve = Callable[[Mapping[str, Any]], TaskQueue]


class ClaimIndex:
    """Queue identity → claimants, kept from watch events; thread-safe."""

    def __init__(
        self,
        *,
        resolve: Resolve,
        scopes: Iterable[str | None] = (None,),
        permitted: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        """`permitted(body)`: whether its namespace's policies allow a claimant now. One they
        refuse (stored while the webhook was down, or refused by a policy tightened later)
        owns nothing: it cannot squat another team's queue names."""
        self._resolve = resolve
        self._permitted = permitted or (lambda _: True)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._seen: dict[str, str] = {}
        """uid of every object the watch has delivered, valid or not, by key."""
        self._claimants: dict[str, Claimant] = {}
        self._by_queue: dict[QueueIdentity, set[str]] = defaultdict(set)
        self._pending = set(scopes)
        """Scopes (a namespace, None for the cluster) whose first list is not in yet."""
        self._complete = threading.Event()
        if not self._pending:
            self._complete.set()

    # -- what the watch tells it ---------------------------------------------------------

    def replace(self, scope: str | None, bodies: Iterable[Mapping[str, Any]]) -> None:
        """A full list of `scope` (a namespace, or None for every namespace)."""
        bodies = list(bodies)
        claimants = [c for c in (self._claimant(b) for b in bodies) if c is not None]
        with self._lock:
            for key in [k for k in self._claimants if scope is None or _ns(k) == scope]:
                self._drop(key)
            for key in [k for k in self._seen if scope is None or _ns(k) == scope]:
                del self._seen[key]
            for claimant in claimants:
                self._add(claimant)
            self._seen.update({_key(b): _uid(b) for b in bodies})
            self._changed.notify_all()
            self._pending.discard(scope)
            if not self._pending:
                self._complete.set()

    def upsert(self, body: Mapping[str, Any]) -> None:
        key = _key(body)
        with self._lock:
            known = self._claimants.get(key)
            if known is not None and _same_spec(known.body, body):
                # A status write (most events): the claims are those already parsed.
                self._seen[key] = _uid(body)
                self._changed.notify_all()
                return
        claimant = self._claimant(body)
        with self._lock:
            self._drop(key)
            if claimant is not None:
                self._add(claimant)
            self._seen[key] = _uid(body)
            self._changed.notify_all()

    def remove(self, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._drop(_key(body))
            self._seen.pop(_key(body), None)

    # -- what admission and reconcile ask ------------------------------------------------

    @property
    def complete(self) -> bool:
        return self._complete.is_set()

    def wait_complete(self, timeout: float) -> bool:
        return self._complete.wait(timeout)

    def wait_seen(self, body: Mapping[str, Any], timeout: float) -> bool:
        """Wait until the watch has delivered `body` itself. Events come in the order the
        API server stored them, so every claimant stored before it is then known: its
        reconcile cannot miss a senior created a moment earlier."""
        key, uid = _key(body), _uid(body)
        with self._changed:
            return self._changed.wait_for(lambda: self._seen.get(key) == uid, timeout)

    def clashes(
        self, queues: Iterable[QueueIdentity], *, key: str, rank: Rank | None
    ) -> list[Clash]:
        """The queues among `queues` that a claimant senior to (`key`, `rank`) holds."""
        found: list[Clash] = []
        with self._lock:
            candidates = {
                queue: [
                    self._claimants[k]
                    for k in self._by_queue.get(queue, ())
                    if k != key and _senior(self._claimants[k].rank, rank)
                ]
                for queue in sorted(queues)
            }
        # Outside the lock: the policy check resolves bodies (only those of clashing seniors).
        for queue, seniors in candidates.items():
            owners = [c for c in seniors if self._permitted(c.body)]
            if owners:
                owner = min(owners, key=lambda c: (c.rank or ("~", "~"), c.key))
                found.append(Clash(queue=queue, owner=owner.key, asking=key))
        return found

    def senior_peers(self, body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Bodies of the senior claimants that share a queue with `body`: the peers its
        reconcile must yield to (juniors never invalidate it).

        A peer that reaches the same service by another spelling of its endpoint (an alias)
        is given `body`'s own `spec.sqs.region`/`endpoint`, so a check that compares the
        spelt values (the reconciler's) sees the clash too."""
        claimant = self._claimant(body)
        if claimant is None:
            return []
        clashes = self.clashes(claimant.queues, key=claimant.key, rank=claimant.rank)
        owners = sorted({c.owner for c in clashes})
        with self._lock:
            peers = [self._claimants[k] for k in owners if k in self._claimants]
        own_service = {(q.region, q.endpoint) for q in claimant.queues}
        own_sqs = dict(body.get("spec", {}).get("sqs") or {})
        spelt: list[Mapping[str, Any]] = []
        for peer in peers:
            document = {"metadata": peer.body["metadata"], "spec": dict(peer.body["spec"])}
            if {(q.region, q.endpoint) for q in peer.queues} & own_service:
                sqs = {
                    k: v
                    for k, v in dict(document["spec"].get("sqs") or {}).items()
                    if k not in ("region", "endpoint")
                }
                sqs.update({k: own_sqs[k] for k in ("region", "endpoint") if k in own_sqs})
                document["spec"]["sqs"] = sqs
            spelt.append(document)
        return spelt

    # -- internals ------------------------------------------------------------------------

    def _claimant(self, body: Mapping[str, Any]) -> Claimant | None:
        metadata = dict(body.get("metadata", {}))
        document = {"metadata": metadata, "spec": dict(body.get("spec", {}))}
        try:
            resource = self._resolve(document)
        except InvalidDocument:
            return None  # an invalid resource claims nothing
        return Claimant(
            key=_key(body), rank=rank(metadata), queues=identities(resource), body=document
        )

    def _add(self, claimant: Claimant) -> None:
        self._claimants[claimant.key] = claimant
        for queue in claimant.queues:
            self._by_queue[queue].add(claimant.key)

    def _drop(self, key: str) -> None:
        old = self._claimants.pop(key, None)
        if old is None:
            return
        for queue in old.queues:
            holders = self._by_queue.get(queue)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_queue[queue]


def _same_spec(known: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """The same object at the same generation (the API server bumps it on every spec change)."""
    old, new = known.get("metadata", {}), body.get("metadata", {})
    return (
        old.get("uid") == new.get("uid")
        and old.get("generation") is not None
        and old.get("generation") == new.get("generation")
    )


def _senior(candidate: Rank | None, than: Rank | None) -> bool:
    if candidate is None:
        return False  # not stored: junior to everything
    return senior(candidate, than)


def _key(body: Mapping[str, Any]) -> str:
    metadata = body.get("metadata", {})
    return f"{metadata.get('namespace') or 'default'}/{metadata.get('name')}"


def _uid(body: Mapping[str, Any]) -> str:
    return str(body.get("metadata", {}).get("uid") or "")


def _ns(key: str) -> str:
    return key.split("/", 1)[0]


class ClaimWatcher:
    """Keeps a `ClaimIndex` from a list-then-watch of TaskQueues, one thread per scope."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        index: ClaimIndex,
        *,
        namespaces: Iterable[str] = (),
        initial_delay: float = 0,
    ) -> None:
        objects = kubernetes.client.CustomObjectsApi(api)
        scopes: list[str | None] = [*namespaces] or [None]

        def on_event(kind: str, body: Mapping[str, Any]) -> None:
            if kind == "DELETED":
                index.remove(body)
            else:
                index.upsert(body)

        self._watches = [
            ListWatch(
                name=f"claims {scope or 'cluster'}",
                list_objects=_lister(objects, scope),
                on_list=functools.partial(index.replace, scope),
                on_event=on_event,
                initial_delay=initial_delay,
            )
            for scope in scopes
        ]

    def start(self) -> None:
        for watch in self._watches:
            watch.start()

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()


def _lister(api: kubernetes.client.CustomObjectsApi, scope: str | None) -> Callable[..., Any]:
    if scope is None:
        return functools.partial(api.list_cluster_custom_object, GROUP, VERSION, PLURAL)
    return functools.partial(api.list_namespaced_custom_object, GROUP, VERSION, scope, PLURAL)
