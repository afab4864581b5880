"""`kube-taskqueue iam operator|processors`: the least-privilege IAM policies to paste, printed
as JSON from the same TaskQueuePolicies and TaskQueues the operator runs on (resource/iam.py).

Exit codes as the other operator commands: 0 fine, 1 invalid TaskQueues, 2 unreadable input or
bad usage (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kube_taskqueue_operator import cli
from kube_taskqueue_operator.resource import iam
from kube_taskqueue_operator.resource.manifests import ManifestError
from kube_taskqueue_operator.resource.policy import Tenancy

IAM_HELP = """\
Print least-privilege IAM policies as JSON: `operator` for the operator's own AWS identity
(the queues the TaskQueuePolicies let it manage), `processors` for the identities the
processors and the scheduled tasks' CronJobs run as. Paste them into `aws iam create-policy
--policy-document`, Terraform's aws_iam_policy or eksctl."""

PROCESSORS_HELP = """\
Print one JSON object: each processor's policy keyed `namespace/taskqueue/processor` (or, with
--by-identity, one policy per identity its pods use: `namespace/serviceaccount/NAME`, the IAM
role IRSA or EKS Pod Identity gives that ServiceAccount, or `namespace/secret/NAME` for a
credentialsSecret). Pick one with jq: jq '.["billing/accounts/main"]'."""


def add_parser(commands: Any) -> None:
    """Register `iam` with its two subcommands on `kube-taskqueue`'s subparsers."""
    parser = commands.add_parser(
        "iam", help="print least-privilege IAM policies (JSON)", description=IAM_HELP
    )
    kinds = parser.add_subparsers(dest="iam_command", required=True)

    operator = kinds.add_parser(
        "operator",
        help="the operator's own identity: manage the queues the policies allow it",
        description="The operator's IAM policy: one statement per TaskQueuePolicy that lets "
        "the operator's identity manage a namespace's queues (operatorCredentials: Allowed), "
        "and one for the default policy, on the queue names their queuePrefixes allow "
        "(`{namespace}`: each namespace a policy names; `*` for a namespaceSelector and the "
        "default policy, as IAM cannot know namespaces).",
    )
    operator.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="PATH",
        help="TaskQueuePolicy manifests, with Namespace manifests for the labels their "
        "namespaceSelector matches (repeatable; a file, a directory or -)",
    )
    operator.add_argument(
        "--default-policy",
        metavar="FILE",
        help="the operator's default policy for namespaces no TaskQueuePolicy selects (the "
        "chart's tenancy.defaultPolicy); the built-in one when left out",
    )
    operator.add_argument(
        "--without-default-policy",
        action="store_true",
        help="grant nothing for the default policy (when the operator watches only "
        "namespaces the TaskQueuePolicies select)",
    )
    _add_arn_parts(operator)
    operator.add_argument("--region", default=iam.ANY, help="region of the queues (default: *)")
    operator.set_defaults(handler=_operator, default_endpoint=None)

    processors = kinds.add_parser(
        "processors",
        help="the processors' identities: poll their queues, send to their TaskQueue's",
        description=PROCESSORS_HELP,
    )
    processors.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="PATH",
        help="TaskQueue manifest: a file, a directory, or - for stdin (repeatable)",
    )
    processors.add_argument(
        "--namespace", default="default", help="namespace of manifests without one"
    )
    processors.add_argument(
        "--by-identity",
        action="store_true",
        help="one policy per ServiceAccount or credentials Secret (what its role carries)",
    )
    _add_arn_parts(processors)
    cli._add_defaults(processors)
    processors.set_defaults(handler=_processors)


def _add_arn_parts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--account", default=iam.ANY, help="AWS account id of the queues (default: *)"
    )
    parser.add_argument(
        "--partition",
        help="ARN partition (default: from the region, aws unless cn-* or us-gov-*)",
    )


def _check(options: argparse.Namespace, region: str = iam.ANY) -> None:
    try:
        iam.check_arn_parts(account=options.account, region=region, partition=options.partition)
    except iam.InvalidArn as error:
        raise ManifestError(str(error)) from None


def _operator(options: argparse.Namespace) -> int:
    _check(options, options.region)
    tenancy = cli._tenancy(options) or Tenancy()
    try:
        policy = iam.operator_policy(
            tenancy,
            include_default=not options.without_default_policy,
            account=options.account,
            region=options.region,
            partition=options.partition,
        )
    except iam.NothingToGrant as error:
        cli._note(str(error))
        return 0
    _warn_size("the operator's policy", policy)
    _print(policy)
    return 0


def _processors(options: argparse.Namespace) -> int:
    _check(options)
    loaded = cli._load(
        options.filename, options.namespace, cli._defaults(options), cli._tenancy(options)
    )
    if loaded.problems:
        for line in loaded.problems:
            print(line, file=sys.stderr)
        return cli.INVALID
    if not loaded.resources:
        raise ManifestError(f"{', '.join(options.filename)}: no TaskQueue found")
    build = iam.identity_policies if options.by_identity else iam.processor_policies
    policies = build(loaded.resources, account=options.account, partition=options.partition)
    for key, policy in policies.items():
        _warn_size(key, policy)
    _print(policies)
    return 0


def _warn_size(what: str, policy: dict[str, Any]) -> None:
    chars = iam.size(policy)
    if chars > iam.MAX_MANAGED_POLICY_CHARS:
        cli._note(
            f"{what} has {chars} characters, more than the {iam.MAX_MANAGED_POLICY_CHARS} of a "
            "managed IAM policy: attach it inline (10,240) or split it"
        )


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")
