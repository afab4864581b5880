"""Operator-side commands of `kube-taskqueue`: validate, render, crd, operator.

Exit codes: 0 fine, 1 invalid TaskQueues (or CRD drift), 2 unreadable input or bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import pydantic
import yaml

from kube_taskqueue_operator import iamcli
from kube_taskqueue_operator.resource import yamlio
from kube_taskqueue_operator.resource.crd import generated_files, render_crd, render_policy_crd
from kube_taskqueue_operator.resource.defaults import SqsDefaults, with_defaults
from kube_taskqueue_operator.resource.manifests import ManifestError, load_taskqueues
from kube_taskqueue_operator.resource.models import TaskQueue
from kube_taskqueue_operator.resource.policy import (
    InvalidPolicy,
    PolicyRules,
    Tenancy,
    parse_rules,
    tenancy_from_documents,
)
from kube_taskqueue_operator.resource.render import render_queue_plan, render_text
from kube_taskqueue_operator.resource.validation import InvalidDocument, parse, validate_all

INVALID = 1
USAGE = 2


RENDER_HELP = """\
Print the Kubernetes objects the operator applies for each TaskQueue (per processor a
ConfigMap and a Deployment, an HPA when autoscaled on CPU, a KEDA ScaledObject and
TriggerAuthentication when on queue depth, a CronJob per scheduled task), ready for
`kubectl apply -f -`, `kubectl diff -f -` or kubeconform. The SQS queues the operator creates
are not Kubernetes objects: they head the output as a YAML comment, and --queues prints them
alone, as one QueuePlan document per TaskQueue (for review, not for kubectl)."""


def main(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(list(argv))
    try:
        code: int = options.handler(options)
    except ManifestError as error:
        _error(str(error))
        return USAGE
    return code


def build_parser() -> argparse.ArgumentParser:
    """The operator commands' parser (also the source of the generated CLI reference)."""
    parser = argparse.ArgumentParser(prog="kube-taskqueue")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser(
        "validate",
        help="check TaskQueue manifests (files, directories, - for stdin) without a cluster",
        description="Check TaskQueue manifests without a cluster: the schema, the rules of the "
        "admission webhook, and across files (no SQS queue claimed twice). Directories are "
        "read as `kubectl apply -f` reads them; Helm charts in them are skipped with a note "
        "(validate what they render: helm template CHART -f VALUES | kube-taskqueue validate -).",
    )
    validate.add_argument(
        "paths", nargs="+", metavar="PATH", help="a file, a directory, or - for stdin"
    )
    validate.add_argument(
        "--namespace", default="default", help="namespace of manifests without one"
    )
    _add_defaults(validate)
    validate.set_defaults(handler=_validate)

    render_cmd = commands.add_parser(
        "render",
        help="print the objects the operator would apply (and, with --queues, its queues)",
        description=RENDER_HELP,
    )
    render_cmd.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="PATH",
        help="TaskQueue manifest: a file, a directory, or - for stdin (repeatable)",
    )
    render_cmd.add_argument(
        "--queues",
        action="store_true",
        help="print only the SQS queues (QueuePlan documents), not the Kubernetes objects",
    )
    render_cmd.add_argument(
        "--namespace", default="default", help="namespace of manifests without one"
    )
    _add_defaults(render_cmd)
    render_cmd.set_defaults(handler=_render)

    crd = commands.add_parser(
        "crd", help="print the CRDs (TaskQueue, TaskQueuePolicy) generated from the models"
    )
    mode = crd.add_mutually_exclusive_group()
    mode.add_argument(
        "--write",
        action="store_true",
        help="write it to crds/ and the chart's files/ (in a source checkout)",
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the checked-in CRD differs (in a source checkout)",
    )
    crd.set_defaults(handler=_crd)

    operator = commands.add_parser(
        "operator", help="run the TaskQueue operator (settings from TASKQUEUE_* variables)"
    )
    operator.add_argument(
        "operator_args",
        nargs=argparse.REMAINDER,
        metavar="FLAGS",
        help="--namespace NS (repeatable: watch only these) and --verbose (debug logs); "
        "they override the TASKQUEUE_* settings",
    )
    operator.set_defaults(handler=_operator)

    iamcli.add_parser(commands)
    return parser


def _error(message: str) -> None:
    print(f"kube-taskqueue: error: {message}", file=sys.stderr)


def _note(message: str) -> None:
    print(f"kube-taskqueue: note: {message}", file=sys.stderr)


def _add_defaults(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "operator defaults (as the operator of the target environment has them)"
    )
    group.add_argument("--default-region", help="region of resources that set none")
    group.add_argument("--default-endpoint", help="SQS endpoint of resources that set none")
    group.add_argument(
        "--default-queue-prefix", default="", help="queue prefix of resources that set none"
    )
    tenancy = parser.add_argument_group(
        "tenancy (the checks of the operator's TaskQueuePolicies; off unless one is given)"
    )
    tenancy.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="PATH",
        help="TaskQueuePolicy manifests, with Namespace manifests for the labels their "
        "namespaceSelector matches (repeatable; a file, a directory or -)",
    )
    tenancy.add_argument(
        "--default-policy",
        metavar="FILE",
        help="the operator's default policy for namespaces no TaskQueuePolicy selects (a YAML "
        "or JSON object: the chart's tenancy.defaultPolicy); implies the policy checks",
    )


def _defaults(options: argparse.Namespace) -> SqsDefaults:
    return SqsDefaults(
        region=options.default_region,
        endpoint=options.default_endpoint,
        queue_prefix=options.default_queue_prefix,
    )


@dataclasses.dataclass(kw_only=True)
class _Loaded:
    resources: list[TaskQueue]
    problems: list[str]
    """One line each, `source: namespace/name: message`."""
    skipped: int
    """Helm charts and templates left out (each with a note on stderr)."""


def _tenancy(options: argparse.Namespace) -> Tenancy | None:
    """The policies given with --policy/--default-policy; None when neither is."""
    if not options.policy and not options.default_policy:
        return None
    default = PolicyRules()
    if options.default_policy:
        path = Path(options.default_policy)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ManifestError(f"{path}: cannot read the default policy: {error}") from None
        try:
            default = parse_rules(loaded or {})
        except pydantic.ValidationError as error:
            raise ManifestError(
                f"{path}: not a default policy: "
                + "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
                    for e in error.errors()
                )
            ) from None
    documents = load_taskqueues(options.policy, stdin=sys.stdin.buffer).tenancy
    try:
        return tenancy_from_documents(
            (d.body for d in documents), default=default, default_endpoint=options.default_endpoint
        )
    except InvalidPolicy as error:
        raise ManifestError(str(error)) from None


def _load(
    paths: Sequence[str], namespace: str, defaults: SqsDefaults, tenancy: Tenancy | None = None
) -> _Loaded:
    """Parse and validate every TaskQueue under the paths (and, given `tenancy`, check it
    against its namespace's policies); notes go to stderr."""
    manifests = load_taskqueues(paths, stdin=sys.stdin.buffer)
    for note in manifests.notes:
        _note(note)
    resources: list[TaskQueue] = []
    problems = list(manifests.problems)
    sources: dict[str, str] = {}
    for document in manifests.documents:
        try:
            resource = with_defaults(parse(document.body, default_namespace=namespace), defaults)
        except InvalidDocument as error:
            problems.extend(f"{document.source}: {problem}" for problem in error.problems)
            continue
        resources.append(resource)
        sources[resource.key] = document.source
    for problem in validate_all(resources):
        problems.append(f"{sources[problem.resource]}: {problem}")
    if tenancy is not None:
        for resource in resources:
            problems.extend(
                f"{sources[resource.key]}: {resource.key}: {message}"
                for message in tenancy.problems(resource)
            )
    return _Loaded(resources=resources, problems=problems, skipped=len(manifests.notes))


def _validate(options: argparse.Namespace) -> int:
    loaded = _load(options.paths, options.namespace, _defaults(options), _tenancy(options))
    for line in loaded.problems:
        print(line, file=sys.stderr)
    if loaded.problems:
        print(f"{len(loaded.problems)} problem(s) found", file=sys.stderr)
        return INVALID
    summary = f"{len(loaded.resources)} TaskQueue(s) valid"
    if loaded.skipped:
        summary += f" ({loaded.skipped} Helm chart(s) or template(s) skipped, see above)"
    print(summary)
    return 0


def _render(options: argparse.Namespace) -> int:
    loaded = _load(options.filename, options.namespace, _defaults(options), _tenancy(options))
    if loaded.problems:
        for line in loaded.problems:
            print(line, file=sys.stderr)
        return INVALID
    if not loaded.resources:
        _error(f"{', '.join(options.filename)}: no TaskQueue found")
        return USAGE
    if options.queues:
        sys.stdout.write(yamlio.dump_all(render_queue_plan(r) for r in loaded.resources))
    else:
        sys.stdout.write("---\n".join(render_text(r) for r in loaded.resources))
    return 0


def _crd(options: argparse.Namespace) -> int:
    if not (options.write or options.check):
        sys.stdout.write(render_crd() + "---\n" + render_policy_crd())
        return 0
    files = generated_files()
    missing = [path.parent for path in files if not path.parent.is_dir()]
    if missing:
        # Installed from a wheel there is no checkout to write into.
        _error(
            f"crd --write and --check work in a source checkout of kube-taskqueue, and "
            f"{missing[0]} does not exist; to install the CRD: "
            "kube-taskqueue crd | kubectl apply --server-side -f -"
        )
        return USAGE
    if options.write:
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        return 0
    stale = [path for path, text in files.items() if not _same(path, text)]
    for path in stale:
        print(f"{path} is out of date: run `kube-taskqueue crd --write`", file=sys.stderr)
    return INVALID if stale else 0


def _same(path: Path, text: str) -> bool:
    return path.exists() and path.read_text(encoding="utf-8") == text


def _operator(options: argparse.Namespace) -> int:
    from kube_taskqueue_operator.main import run  # noqa: PLC0415 - kopf loads only for this command

    return run(options.operator_args)
