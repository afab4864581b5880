"""The identity of a physical SQS queue: equal identities are the same queue, however its
endpoint is spelt. Shared by the claim index (one owner per queue in the cluster) and
`validate` across files, so both call the same queues the same."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

from kube_taskqueue_operator.resource.models import TaskQueue
from kube_taskqueue_operator.resource.naming import dead_letter_name, physical_name

#: boto3's region when a TaskQueue and the operator name none.
FALLBACK_REGION = "us-east-1"

_AWS_HOST = re.compile(
    r"^(?:sqs\.(?P<region>[a-z0-9-]+)|(?P<legacy>[a-z0-9-]+)\.queue|sqs)"
    r"\.amazonaws\.com(?:\.cn)?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclasses.dataclass(frozen=True, order=True)
class QueueIdentity:
    """One physical SQS queue: equal identities are the same queue, however spelt."""

    region: str
    endpoint: str
    """`aws` for AWS's own service (any of its URLs), else scheme://host[:port][/path]."""
    name: str

    def __str__(self) -> str:
        return f"SQS queue {self.name!r} (region {self.region}, endpoint {self.endpoint})"


def normalise(*, region: str | None, endpoint: str | None, name: str) -> QueueIdentity:
    """The identity of queue `name` at `endpoint` in `region`.

    No endpoint, `https://sqs.<region>.amazonaws.com`, the same with a trailing slash, another
    scheme or the default port, and the legacy `<region>.queue.amazonaws.com` are one service;
    a region in an AWS host name is where the queue is, whatever `region` says. Other
    endpoints compare by lower-cased scheme and host, port without the scheme's default and
    path without trailing slashes."""
    region = (region or FALLBACK_REGION).lower()
    if not endpoint:
        return QueueIdentity(region=region, endpoint="aws", name=name)
    raw = endpoint.strip()
    try:
        parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    except ValueError:  # not a URL (validation says so): compare it as written
        return QueueIdentity(region=region, endpoint=raw.lower(), name=name)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    path = parts.path.rstrip("/")
    aws = _AWS_HOST.match(host)
    if aws and not path:
        return QueueIdentity(
            region=aws.group("region") or aws.group("legacy") or region,
            endpoint="aws",
            name=name,
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return QueueIdentity(region=region, endpoint=f"{scheme}://{netloc}{path}", name=name)


def identities(resource: TaskQueue) -> frozenset[QueueIdentity]:
    """Every physical queue `resource` claims: its queues and their dead-letter queues."""
    sqs = resource.spec.sqs
    names: list[str] = []
    for queue in resource.spec.queues:
        names.append(physical_name(resource, queue.name))
        if queue.dead_letter is not None:
            names.append(dead_letter_name(resource, queue.name))
    return frozenset(normalise(region=sqs.region, endpoint=sqs.endpoint, name=n) for n in names)
