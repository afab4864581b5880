"""The documentation's examples run as printed: every block of README.md and docs/**/*.md marked
with a `<!-- test: KIND -->` line immediately before its fence.

- `<!-- test: python -->` before a ```python block. A block whose first line is `# some/path.py`
  is written as that file into a fresh project directory (every such block of the page, so
  other blocks import them) and must import; any other marked block runs as a script there
  (`python -c`, the project on PYTHONPATH) against moto's SQS server (AWS_ENDPOINT_URL, fake
  credentials, region eu-west-1 as the examples name it) and must exit 0. `queues=a,b` on any
  marker of a page creates those queues first, as the operator would have (`.fifo` names as
  FIFO queues).
- `<!-- test: manifest -->` before a ```yaml block: TaskQueue or TaskQueuePolicy documents that
  `kube-taskqueue validate` accepts (policies passed with `--policy` too, so they are read) and
  the test API server takes in a server-side dry run, with the CRDs of crds/ installed and the
  manifests' namespaces created.
- `<!-- test: config -->` before a ```yaml block: a processor configuration that loads as
  `kube-taskqueue run` loads it (the file, the app imported from the page's modules, the split
  rule, the queue settings and task limits checked).

A marker that is not followed by a block of its language fails a test of its own, so marks
cannot silently stop testing anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import readme
import yaml

DOCS = readme.ROOT / "docs"
BIN = Path(sys.executable).parent
TASKQUEUE = BIN / "kube-taskqueue"
#: The region the examples name (`SqsSettings(region="eu-west-1", ...)`).
EXAMPLE_REGION = "eu-west-1"
#: Each kind of marker and the language of the block it must precede.
LANGUAGES = {"python": "python", "manifest": "yaml", "config": "yaml"}
OPTIONS: dict[str, set[str]] = {"python": {"queues"}, "manifest": set(), "config": set()}
MODULE_FILE = re.compile(r"^#\s*(?P<path>[\w/]+\.py)$")
CONFIG_FILE = re.compile(r"^#\s*(?P<path>[\w./-]+\.ya?ml)$")

PAGES = readme.pages()

# What the loaded configuration goes through before `kube-taskqueue run` starts anything.
CHECK_CONFIG = """\
import sys
from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import load_config
from kube_taskqueue.runtime.limits import Limits

config = load_config(sys.argv[1])
provider, assignment = resolve(config)
Limits.of(config, provider, assignment.tasks)
"""


def page_id(page: readme.Markdown) -> str:
    """`how-to/fifo.md` for a docs page, `README.md` for the README."""
    return str(page.path.relative_to(DOCS)) if page.path.is_relative_to(DOCS) else page.name


def examples(kind: str) -> list[Any]:
    return [
        pytest.param(page, marker, id=f"{page_id(page)}:{marker.block.line}")
        for page in PAGES
        for marker in page.markers()
        if marker.kind == kind
        and marker.block is not None
        and marker.block.language == LANGUAGES[kind]
    ]


def module_path(block: readme.Block) -> str | None:
    match = MODULE_FILE.match(block.first_line)
    return match.group("path") if match else None


def write_project(page: readme.Markdown, directory: Path) -> Path:
    """The page's marked `# path.py` blocks as files of a fresh project directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for marker in page.markers():
        if marker.kind != "python" or marker.block is None:
            continue
        path = module_path(marker.block)
        if path:
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(marker.block.body)
    return directory


def page_queues(page: readme.Markdown) -> list[str]:
    names: list[str] = []
    for marker in page.markers():
        for name in marker.options.get("queues", "").split(","):
            if name and name not in names:
                names.append(name)
    return names


def example_env(project: Path, sqs_endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=sqs_endpoint,
        AWS_DEFAULT_REGION=EXAMPLE_REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        PYTHONPATH=str(project),
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
    )
    return env


def run_python(code: str, *args: str, project: Path, env: dict[str, str]) -> Any:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def failure(page: readme.Markdown, marker: readme.Marker, result: Any) -> str:
    assert marker.block is not None
    return (
        f"{page_id(page)}:{marker.block.line} failed (exit {result.returncode})\n"
        f"--- block ---\n{marker.block.body}--- stdout ---\n{result.stdout}"
        f"--- stderr ---\n{result.stderr}"
    )


# -- the markers themselves -----------------------------------------------------------------


def marker_problems(pages: list[readme.Markdown]) -> list[str]:
    problems = []
    for page in pages:
        for marker in page.markers():
            where = f"{page.name}:{marker.line}"
            language = LANGUAGES.get(marker.kind)
            if language is None:
                problems.append(f"{where}: unknown kind `test: {marker.kind}`")
            elif marker.block is None:
                problems.append(
                    f"{where}: `test: {marker.kind}` is not immediately followed by a "
                    f"```{language} fence"
                )
            elif marker.block.language != language:
                problems.append(
                    f"{where}: `test: {marker.kind}` marks a ```{marker.block.language} "
                    f"block, not ```{language}"
                )
            for option in set(marker.options) - OPTIONS.get(marker.kind, set()):
                problems.append(f"{where}: unknown option {option!r} for `test: {marker.kind}`")
    return problems


def test_every_marker_precedes_a_block_of_its_language():
    assert marker_problems(PAGES) == []


def test_a_marker_before_anything_else_is_a_problem(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- test: python -->\n\n```python\nprint(1)\n```\n"  # a blank line between
        "<!-- test: manifest -->\n```sh\nkubectl get tq\n```\n"  # the wrong language
        "<!-- test: config -->\nsome text\n"  # no block at all
        "<!-- test: pyhton -->\n```python\nprint(1)\n```\n"  # a misspelt kind
        "<!-- test: python queue=a -->\n```python\nprint(1)\n```\n"  # a misspelt option
        "<!-- test: python queues=a -->\n```python\nprint(1)\n```\n"  # fine
    )
    problems = marker_problems([readme.Markdown(page)])
    assert [problem.split(": ", 1)[0].rsplit(":", 1)[1] for problem in problems] == [
        "1",
        "6",
        "10",
        "12",
        "16",
    ], problems


def test_the_examples_this_documentation_promises_are_marked():
    found = {kind: {param.id.rsplit(":", 1)[0] for param in examples(kind)} for kind in LANGUAGES}
    assert {"README.md", "getting-started/local.md", "how-to/add-a-task.md"} <= found["python"]
    assert {"how-to/fifo.md", "how-to/delays.md"} <= found["python"]
    assert {"getting-started/cluster.md", "concepts/tenancy.md"} <= found["manifest"]
    assert "getting-started/local.md" in found["config"]


# -- python ---------------------------------------------------------------------------------


def create_queues(endpoint: str, names: list[str]) -> None:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=EXAMPLE_REGION)
    for name in names:
        attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        sqs.create_queue(QueueName=name, Attributes=attributes)


@pytest.mark.parametrize(("page", "marker"), examples("python"))
def test_python_example_runs(page, marker, tmp_path, sqs_endpoint):
    project = write_project(page, tmp_path / "project")
    create_queues(sqs_endpoint, page_queues(page))
    path = module_path(marker.block)
    # A module of the page must import; any other block runs as it is.
    code = f"import {path.removesuffix('.py').replace('/', '.')}" if path else marker.block.body
    result = run_python(code, project=project, env=example_env(project, sqs_endpoint))
    assert result.returncode == 0, failure(page, marker, result)


# -- processor configurations ---------------------------------------------------------------


@pytest.mark.parametrize(("page", "marker"), examples("config"))
def test_config_example_loads_as_run_loads_it(page, marker, tmp_path, sqs_endpoint):
    project = write_project(page, tmp_path / "project")
    named = CONFIG_FILE.match(marker.block.first_line)
    config = project / (named.group("path") if named else "processor.yaml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(marker.block.body)
    result = run_python(
        CHECK_CONFIG,
        str(config.relative_to(project)),
        project=project,
        env=example_env(project, sqs_endpoint),
    )
    assert result.returncode == 0, failure(page, marker, result)


# -- manifests ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ensure_namespace(control_plane) -> Iterator[Callable[[str], None]]:
    """Creates a manifest's namespace once; deletes the ones it created at the end."""
    created: list[str] = []

    def ensure(name: str) -> None:
        exists = control_plane.kubectl_run("get", "namespace", name, check=False)
        if exists.returncode != 0:
            control_plane.kubectl_run("create", "namespace", name)
            created.append(name)

    yield ensure
    for name in created:
        control_plane.kubectl_run("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.kube
@pytest.mark.parametrize(("page", "marker"), examples("manifest"))
def test_manifest_example_validates_and_the_api_server_takes_it(
    page, marker, tmp_path, control_plane, crd, ensure_namespace
):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(marker.block.body)
    documents = [d for d in yaml.safe_load_all(marker.block.body) if d]
    assert documents, f"{page_id(page)}:{marker.block.line}: no document"
    policies = (
        ["--policy", str(manifest)]
        if any(d.get("kind") == "TaskQueuePolicy" for d in documents)
        else []
    )
    validated = subprocess.run(
        [str(TASKQUEUE), "validate", *policies, str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert validated.returncode == 0, failure(page, marker, validated)
    for document in documents:
        namespace = (document.get("metadata") or {}).get("namespace")
        if namespace:
            ensure_namespace(namespace)
    applied = control_plane.kubectl_run(
        "apply", "--server-side", "--dry-run=server", "-f", str(manifest), check=False
    )
    assert applied.returncode == 0, failure(page, marker, applied)
