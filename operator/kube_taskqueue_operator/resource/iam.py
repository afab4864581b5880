"""Least-privilege IAM policies for the operator and the processors, rendered from the same
models the operator runs on: the TaskQueuePolicies (which queue names a namespace may use, and
whether the operator's own identity may manage them) and the resolved TaskQueues.

Pure functions; `kube-taskqueue iam operator|processors` prints what they return. Each action
below is one the code really calls, with where: a call added to the operator or the processor
needs its action here too (the tests pin the lists).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.models import ProcessorSpec, TaskQueue
from kube_taskqueue_operator.resource.policy import (
    NAMESPACE_PLACEHOLDER,
    PolicyRules,
    TaskQueuePolicy,
    Tenancy,
)
from kube_taskqueue_operator.resource.render import processor_config, queue_plan

POLICY_VERSION = "2012-10-17"
ANY = "*"
DEFAULT_PARTITION = "aws"
#: The largest customer managed policy IAM accepts, in characters without whitespace (an
#: inline role policy may have 10,240, all of a role's inline policies together).
MAX_MANAGED_POLICY_CHARS = 6_144

#: Every SQS call of the operator (queues.py, `QueueManager`, driven by reconcile.py), as the
#: IAM action that authorises it.
OPERATOR_ACTIONS: Mapping[str, str] = {
    "sqs:GetQueueUrl": "QueueManager._url: look a queue up by name before ensuring, releasing "
    "or deleting it",
    "sqs:CreateQueue": "QueueManager._ensure_one: create a missing queue or dead-letter queue",
    "sqs:TagQueue": "QueueManager._ensure_one: the ownership tags (create_queue passes tags, "
    "which SQS authorises as sqs:TagQueue too) and tags missing from an existing queue",
    "sqs:ListQueueTags": "QueueManager._owned/_ensure_one: whose queue it is before any change",
    "sqs:GetQueueAttributes": "QueueManager._ensure_one/_arn/depth: current attributes, the ARN "
    "for the redrive policy, the queue depths shown in the status",
    "sqs:SetQueueAttributes": "QueueManager._ensure_one: repair drifted attributes, set the "
    "RedrivePolicy",
    "sqs:UntagQueue": "QueueManager.release/retire: deletionPolicy Retain hands a queue back",
}
#: Only for policies that allow `deletionPolicy: Delete` (allowDeletion): the reconcile
#: refuses Delete elsewhere, so the operator never deletes there.
DELETE_ACTIONS: Mapping[str, str] = {
    "sqs:DeleteQueue": "QueueManager.delete/retire: deletionPolicy Delete",
}

#: A processor's calls on the queues it polls. The batch calls are authorised by the
#: non-batch action names (IAM has no sqs:DeleteMessageBatch or
#: sqs:ChangeMessageVisibilityBatch action).
POLL_ACTIONS: Mapping[str, str] = {
    "sqs:GetQueueUrl": "runtime/poller.py Poller._look_up",
    "sqs:ReceiveMessage": "runtime/poller.py Poller._receive (long poll)",
    "sqs:DeleteMessage": "runtime/acker.py Acker._send: DeleteMessageBatch of finished messages",
    "sqs:ChangeMessageVisibility": "runtime/acker.py Acker._send (retry backoff, held "
    "messages) and runtime/heartbeat.py (renewals): ChangeMessageVisibilityBatch",
    "sqs:GetQueueAttributes": "runtime/deferral.py Deferrer.facts: RedrivePolicy and "
    "MessageRetentionPeriod of a queue with delayed messages",
}
#: Sending, on every queue of the processor's TaskQueue: tasks enqueue other tasks of their
#: app, and a delayed message is re-sent to the queue it came from.
SEND_ACTIONS: Mapping[str, str] = {
    "sqs:GetQueueUrl": "producer.py Producer.queue_url",
    "sqs:SendMessage": "producer.py Producer.enqueue (SendMessage) and enqueue_many "
    "(SendMessageBatch); runtime/deferral.py Deferrer.resend (SendMessage)",
}
#: A scheduled task's CronJob runs `kube-taskqueue enqueue` (cli/main.py `_enqueue`, one
#: `Producer.enqueue`) with its processor's configuration and the TaskQueue's ServiceAccount.
SCHEDULE_ACTIONS: Mapping[str, str] = {
    "sqs:GetQueueUrl": "producer.py Producer.queue_url",
    "sqs:SendMessage": "producer.py Producer.enqueue",
}

POLL_SID = "PollQueues"
MANAGE_SID = "ManageQueues"
SEND_SID = "SendToTaskQueueQueues"
SCHEDULE_SID = "EnqueueScheduledTasks"
DEFAULT_POLICY_SID = "DefaultPolicy"

_REGION = re.compile(r"^([a-z0-9-]+|\*)$")
_ACCOUNT = re.compile(r"^([0-9]{12}|\*)$")
_PARTITION = re.compile(r"^aws(-[a-z]+)*$")


class InvalidArn(ValueError):
    """An account, region or partition no ARN can hold."""


def check_arn_parts(*, account: str, region: str, partition: str | None) -> None:
    """Raises InvalidArn, one line, for a value no ARN can hold."""
    if not _ACCOUNT.match(account):
        raise InvalidArn(f"account {account!r} is not an AWS account id (12 digits) or '*'")
    if not _REGION.match(region):
        raise InvalidArn(f"region {region!r} is not an AWS region (e.g. eu-west-1) or '*'")
    if partition is not None and not _PARTITION.match(partition):
        raise InvalidArn(f"partition {partition!r} is not an AWS partition (e.g. aws, aws-cn)")


def partition_of(region: str) -> str:
    """The partition of a region's ARNs; `aws` when the region is unknown (`*`)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return DEFAULT_PARTITION


def queue_arn(*, partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def document(statements: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": list(statements)}


def statement(sid: str, actions: Iterable[str], resources: Iterable[str]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)),
    }


def size(policy: Mapping[str, Any]) -> int:
    """Characters IAM counts against its size limits (whitespace is not counted)."""
    return len(json.dumps(policy, separators=(",", ":")))


# -- the operator ---------------------------------------------------------------------------


class NothingToGrant(ValueError):
    """No policy lets the operator manage queues with its own identity."""


def operator_policy(
    tenancy: Tenancy,
    *,
    include_default: bool = True,
    account: str = ANY,
    region: str = ANY,
    partition: str | None = None,
) -> dict[str, Any]:
    """The operator's own identity's policy: manage the queues whose names the policies let a
    namespace use, where they let the operator's identity do it (operatorCredentials: Allowed).

    One statement per TaskQueuePolicy (Sid from its name, in name order), then the default
    policy's, on `arn:<partition>:sqs:<region>:<account>:<prefix>*`. A prefix's `{namespace}`
    is each namespace a policy lists by name; for a namespaceSelector and for the default
    policy (any namespace no policy selects) it is `*`, as IAM cannot know which namespaces
    a label selects or which exist. A listed namespace another applied policy forbids the
    operator's identity (as `Tenancy.applied` sees it: by name, or by the labels of the
    Namespace documents given) is left out. Where several policies apply to a namespace a
    TaskQueue must satisfy all of them, which IAM cannot say: each policy's prefixes are
    granted, a superset of what admission lets through. `include_default=False` when the
    operator watches only namespaces the policies select. Raises NothingToGrant.
    """
    statements: list[dict[str, Any]] = []
    sids: set[str] = set()
    for policy in sorted(tenancy.policies, key=lambda p: p.metadata.name):
        rules = policy.spec
        if rules.operator_credentials != "Allowed":
            continue
        namespaces = [n for n in sorted(set(rules.namespaces)) if _operator_may(tenancy, n)]
        prefixes = [
            prefix.replace(NAMESPACE_PLACEHOLDER, namespace)
            for namespace in namespaces
            for prefix in rules.queue_prefixes
        ]
        if rules.namespace_selector is not None:
            prefixes += [_any_namespace(prefix) for prefix in rules.queue_prefixes]
        found = _manage(rules, prefixes, account=account, region=region, partition=partition)
        if found is not None:
            statements.append(statement(_unique_sid(_sid_of(policy), sids), *found))
    default = tenancy.default
    if include_default and default.operator_credentials == "Allowed":
        found = _manage(
            default,
            [_any_namespace(prefix) for prefix in default.queue_prefixes],
            account=account,
            region=region,
            partition=partition,
        )
        if found is not None:
            statements.append(statement(_unique_sid(DEFAULT_POLICY_SID, sids), *found))
    if not statements:
        raise NothingToGrant(
            "no policy lets the operator manage queues with its own AWS identity "
            "(operatorCredentials: Forbidden everywhere, or no allowed region): it needs no SQS "
            "permissions of its own; each TaskQueue's credentialsSecret identity does"
        )
    return document(statements)


def _operator_may(tenancy: Tenancy, namespace: str) -> bool:
    return all(a.rules.operator_credentials == "Allowed" for a in tenancy.applied(namespace))


def _any_namespace(prefix: str) -> str:
    # IAM cannot know the namespaces: any will do.
    return prefix.replace(NAMESPACE_PLACEHOLDER, ANY)


def _manage(
    rules: PolicyRules,
    prefixes: Sequence[str],
    *,
    account: str,
    region: str,
    partition: str | None,
) -> tuple[list[str], list[str]] | None:
    """The actions and resources of one policy's statement; None when it grants nothing."""
    regions = _regions(rules, region)
    if not prefixes or not regions:
        return None
    actions = list(OPERATOR_ACTIONS)
    if rules.allow_deletion:
        actions += list(DELETE_ACTIONS)
    resources = [
        # `<prefix>*`: the queue names, dead-letter queues and `.fifo` included, start so.
        queue_arn(
            partition=partition or partition_of(each),
            region=each,
            account=account,
            name=prefix + ANY,
        )
        for each in regions
        for prefix in prefixes
    ]
    return actions, resources


def _regions(rules: PolicyRules, region: str) -> list[str]:
    """The ARN regions of a policy: the regions it allows (those equal to `region` when one is
    given), else `region`."""
    if not rules.regions:
        return [region]
    return sorted(r for r in set(rules.regions) if region in (ANY, r))


def _sid_of(policy: TaskQueuePolicy) -> str:
    # Sids are alphanumeric: `team-a.ops` becomes `TaskQueuePolicyTeamAOps`.
    words = re.split(r"[^A-Za-z0-9]+", policy.metadata.name)
    return "TaskQueuePolicy" + "".join(word[:1].upper() + word[1:] for word in words)


def _unique_sid(sid: str, taken: set[str]) -> str:
    chosen, number = sid, 2
    while chosen in taken:
        chosen, number = f"{sid}{number}", number + 1
    taken.add(chosen)
    return chosen


# -- the processors -------------------------------------------------------------------------


def polled_queues(resource: TaskQueue, processor: ProcessorSpec) -> list[str]:
    """The SQS names of the queues a processor polls: those of its configuration (the queues
    of its tasks, as `render.processor_config` decides)."""
    config = processor_config(resource, processor)
    return sorted(naming.physical_name(resource, queue) for queue in config.queues)


def processor_policy(
    resource: TaskQueue,
    processor: ProcessorSpec,
    *,
    account: str = ANY,
    partition: str | None = None,
) -> dict[str, Any]:
    """What one processor's identity needs: poll its queues, send to its TaskQueue's queues.

    The dead-letter queues need nothing: SQS itself moves messages there. `kube-taskqueue dlq`
    (an operations tool) is run with a person's identity, not the processor's.
    """
    arn = _arns(resource, account=account, partition=partition)
    every = [naming.physical_name(resource, queue.name) for queue in resource.spec.queues]
    return document(
        [
            statement(POLL_SID, POLL_ACTIONS, map(arn, polled_queues(resource, processor))),
            statement(SEND_SID, SEND_ACTIONS, map(arn, every)),
        ]
    )


def scheduler_policy(
    resource: TaskQueue, *, account: str = ANY, partition: str | None = None
) -> dict[str, Any] | None:
    """What the CronJobs of the scheduled tasks need (None without any): send to their tasks'
    queues. They run as the TaskQueue's ServiceAccount with the processor's configuration, so
    this is within that processor's SendToTaskQueueQueues statement; it is kept apart for
    review and for identities that only schedule."""
    owned = {name for processor in resource.spec.processors for name in processor.tasks}
    queues = sorted(
        {
            naming.physical_name(resource, task.queue)
            for task in resource.spec.tasks
            if task.schedule is not None and task.name in owned
        }
    )
    if not queues:
        return None
    arn = _arns(resource, account=account, partition=partition)
    return document([statement(SCHEDULE_SID, SCHEDULE_ACTIONS, map(arn, queues))])


def management_policy(
    resource: TaskQueue, *, account: str = ANY, partition: str | None = None
) -> dict[str, Any]:
    """What the operator needs of a TaskQueue's credentialsSecret identity, with which it
    manages that TaskQueue's queues (instead of its own identity): OPERATOR_ACTIONS on the
    spec's queues and dead-letter queues by exact name, and sqs:DeleteQueue only with
    deletionPolicy Delete. A queue removed from the spec is retired (untagged or deleted) once
    no processor polls it: keep its ARN in the policy until then."""
    arn = _arns(resource, account=account, partition=partition)
    names = [
        name
        for definition in queue_plan(resource)
        for name in (
            definition.name,
            *([definition.dead_letter.name] if definition.dead_letter else []),
        )
    ]
    actions = list(OPERATOR_ACTIONS)
    if resource.spec.deletion_policy == "Delete":
        actions += list(DELETE_ACTIONS)
    return document([statement(MANAGE_SID, actions, map(arn, names))])


def processor_policies(
    resources: Iterable[TaskQueue], *, account: str = ANY, partition: str | None = None
) -> dict[str, dict[str, Any]]:
    """Each processor's policy, keyed `namespace/taskqueue/processor`, in key order."""
    found = {
        f"{resource.key}/{processor.name}": processor_policy(
            resource, processor, account=account, partition=partition
        )
        for resource in resources
        for processor in resource.spec.processors
    }
    return dict(sorted(found.items()))


def identity_of(resource: TaskQueue) -> str:
    """Whose AWS identity the processors and CronJobs of a TaskQueue use, as
    `namespace/serviceaccount/NAME` (the role IRSA or EKS Pod Identity gives that
    ServiceAccount) or `namespace/secret/NAME` (the keys in spec.sqs.credentialsSecret, which
    the pods get as environment variables and which win over the ServiceAccount's role)."""
    secret = resource.spec.sqs.credentials_secret
    if secret is not None:
        return f"{resource.namespace}/secret/{secret}"
    return f"{resource.namespace}/serviceaccount/{resource.spec.service_account_name or 'default'}"


def identity_policies(
    resources: Iterable[TaskQueue], *, account: str = ANY, partition: str | None = None
) -> dict[str, dict[str, Any]]:
    """One policy per identity (see `identity_of`): what every processor and scheduled task
    running as it needs, merged, keyed in order. All the processors of a TaskQueue run as its
    one ServiceAccount, so this is the policy its IAM role carries. A credentialsSecret's
    identity is also the one the operator manages that TaskQueue's queues with: its policy
    has `management_policy` too."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        documents = grouped.setdefault(identity_of(resource), [])
        if resource.spec.sqs.credentials_secret is not None:
            documents.append(management_policy(resource, account=account, partition=partition))
        for processor in resource.spec.processors:
            documents.append(
                processor_policy(resource, processor, account=account, partition=partition)
            )
        scheduled = scheduler_policy(resource, account=account, partition=partition)
        if scheduled is not None:
            documents.append(scheduled)
    return {key: merge(grouped[key]) for key in sorted(grouped)}


def merge(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The union of policies: statements with the same actions become one (the first Sid),
    their resources joined; a Sid left on statements of different actions gets a number (IAM
    wants them unique)."""
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    for each in documents:
        for found in each["Statement"]:
            key = tuple(found["Action"])
            if key in merged:
                merged[key]["Resource"] = sorted({*merged[key]["Resource"], *found["Resource"]})
            else:
                merged[key] = {**found, "Resource": list(found["Resource"])}
    ordered = sorted(merged.values(), key=lambda s: (_SID_ORDER.get(s["Sid"], 99), s["Action"]))
    taken: set[str] = set()
    return document({**s, "Sid": _unique_sid(s["Sid"], taken)} for s in ordered)


_SID_ORDER = {MANAGE_SID: 0, POLL_SID: 1, SEND_SID: 2, SCHEDULE_SID: 3}


def _arns(resource: TaskQueue, *, account: str, partition: str | None) -> Callable[[str], str]:
    # A TaskQueue with no region (and none from the operator's defaults) uses whatever boto3
    # finds in the pod: any region.
    region = resource.spec.sqs.region or ANY
    chosen = partition or partition_of(region)

    def arn(name: str) -> str:
        return queue_arn(partition=chosen, region=region, account=account, name=name)

    return arn
