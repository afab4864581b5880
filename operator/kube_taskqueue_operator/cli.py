"""Operator-side commands of `kube-taskqueue`: validate, render, crd, operator.

Exit codes: 0 fine, 1 invalid TaskQueues (or CRD drift), 2 unreadable input or bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kube_taskqueue_operator.resource import yamlio
from kube_taskqueue_operator.resource.crd import CHART_CRD_PATH, CRD_PATH, render_crd
from kube_taskqueue_operator.resource.defaults import SqsDefaults, with_defaults
from kube_taskqueue_operator.resource.manifests import ManifestError, load_taskqueues
from kube_taskqueue_operator.resource.models import TaskQueue
from kube_taskqueue_operator.resource.render import render, render_queue_plan
from kube_taskqueue_operator.resource.validation import InvalidDocument, parse, validate_all

INVALID = 1
USAGE = 2


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kube-taskqueue")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser(
        "validate", help="check TaskQueue manifests (files or directories) without a cluster"
    )
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument(
        "--namespace", default="default", help="namespace of manifests without one"
    )
    _add_defaults(validate)
    validate.set_defaults(handler=_validate)

    render_cmd = commands.add_parser(
        "render", help="print the objects and queues the operator would create"
    )
    render_cmd.add_argument("-f", "--filename", required=True, help="TaskQueue manifest")
    render_cmd.add_argument(
        "--namespace", default="default", help="namespace of manifests without one"
    )
    _add_defaults(render_cmd)
    render_cmd.set_defaults(handler=_render)

    crd = commands.add_parser("crd", help="print the CRD generated from the models")
    mode = crd.add_mutually_exclusive_group()
    mode.add_argument(
        "--write", action="store_true", help="write it to crds/ and the chart's files/"
    )
    mode.add_argument("--check", action="store_true", help="exit 1 if the checked-in CRD differs")
    crd.set_defaults(handler=_crd)

    operator = commands.add_parser(
        "operator", help="run the TaskQueue operator (settings from TASKQUEUE_* variables)"
    )
    operator.add_argument("operator_args", nargs=argparse.REMAINDER)
    operator.set_defaults(handler=_operator)

    options = parser.parse_args(list(argv))
    try:
        code: int = options.handler(options)
    except ManifestError as error:
        print(f"kube-taskqueue: error: {error}", file=sys.stderr)
        return USAGE
    return code


def _add_defaults(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "operator defaults (as the operator of the target environment has them)"
    )
    group.add_argument("--default-region", help="region of resources that set none")
    group.add_argument("--default-endpoint", help="SQS endpoint of resources that set none")
    group.add_argument(
        "--default-queue-prefix", default="", help="queue prefix of resources that set none"
    )


def _defaults(options: argparse.Namespace) -> SqsDefaults:
    return SqsDefaults(
        region=options.default_region,
        endpoint=options.default_endpoint,
        queue_prefix=options.default_queue_prefix,
    )


def _load(
    paths: Sequence[str], namespace: str, defaults: SqsDefaults
) -> tuple[list[TaskQueue], list[str], dict[str, str]]:
    """Parse every TaskQueue; returns resources, problem lines, and key → source."""
    resources: list[TaskQueue] = []
    problems: list[str] = []
    sources: dict[str, str] = {}
    for document in load_taskqueues(paths):
        try:
            resource = with_defaults(parse(document.body, default_namespace=namespace), defaults)
        except InvalidDocument as error:
            problems.extend(f"{document.source}: {problem}" for problem in error.problems)
            continue
        resources.append(resource)
        sources[resource.key] = document.source
    for problem in validate_all(resources):
        problems.append(f"{sources[problem.resource]}: {problem}")
    return resources, problems, sources


def _validate(options: argparse.Namespace) -> int:
    resources, problems, _ = _load(options.paths, options.namespace, _defaults(options))
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return INVALID
    print(f"{len(resources)} TaskQueue(s) valid")
    return 0


def _render(options: argparse.Namespace) -> int:
    resources, problems, _ = _load([options.filename], options.namespace, _defaults(options))
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return INVALID
    if not resources:
        print(f"kube-taskqueue: error: {options.filename}: no TaskQueue found", file=sys.stderr)
        return USAGE
    documents = []
    for resource in resources:
        documents.append(render_queue_plan(resource))
        documents.extend(render(resource))
    sys.stdout.write(yamlio.dump_all(documents))
    return 0


def _crd(options: argparse.Namespace) -> int:
    text = render_crd()
    if options.write:
        for path in (CRD_PATH, CHART_CRD_PATH):
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        return 0
    if options.check:
        stale = [
            path
            for path in (CRD_PATH, CHART_CRD_PATH)
            if not path.exists() or path.read_text(encoding="utf-8") != text
        ]
        for path in stale:
            print(f"{path} is out of date: run `kube-taskqueue crd --write`", file=sys.stderr)
        return INVALID if stale else 0
    sys.stdout.write(text)
    return 0


def _operator(options: argparse.Namespace) -> int:
    from kube_taskqueue_operator.main import run  # noqa: PLC0415 - kopf loads only for this command

    return run(options.operator_args)
