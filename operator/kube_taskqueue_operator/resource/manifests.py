"""Reading TaskQueue manifests from files, directories and stdin (multi-document YAML, JSON,
and kubectl's `kind: List`), as `kubectl apply -f` reads them.

Helm charts are skipped with a note: their templates are not YAML until `helm template`
renders them, and that output is what `kube-taskqueue validate -` reads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from kube_taskqueue_operator.resource.models import GROUP, KIND

#: What `kubectl apply -f DIR` reads.
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: The path that means standard input, as for kubectl.
STDIN = "-"
STDIN_SOURCE = "<stdin>"
CHART_FILE = "Chart.yaml"
TEMPLATES_DIR = "templates"
HELM_ACTION = "{{"


class ManifestError(ValueError):
    """A path that cannot be read or is not YAML; the message names it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    source: str
    """`file` or `file#index` for the n-th document of a multi-document file."""
    body: dict[str, Any]


@dataclasses.dataclass(kw_only=True)
class Manifests:
    documents: list[Document] = dataclasses.field(default_factory=list)
    """The TaskQueue documents found."""
    problems: list[str] = dataclasses.field(default_factory=list)
    """Documents of our API group that are no TaskQueue (the API server refuses them)."""
    notes: list[str] = dataclasses.field(default_factory=list)
    """What was skipped, and why (Helm charts)."""


def is_taskqueue(body: Any) -> bool:
    return isinstance(body, dict) and body.get("kind") == KIND and _our_group(body)


def _our_group(body: dict[str, Any]) -> bool:
    return str(body.get("apiVersion", "")).split("/")[0] == GROUP


def load_taskqueues(paths: Iterable[str | Path], *, stdin: TextIO | None = None) -> Manifests:
    """Every TaskQueue document under the paths (`-` is `stdin`); other kinds are skipped."""
    found = Manifests()
    for raw in paths:
        if str(raw) == STDIN:
            if stdin is None:
                raise ManifestError("-: standard input is not available")
            _collect(found, STDIN_SOURCE, _parse(STDIN_SOURCE, stdin.read(), json_file=False))
            continue
        path = Path(raw)
        if path.is_dir():
            for file in _files_under(path, found.notes):
                _collect(found, str(file), _read(file, explicit=False))
        elif path.is_file():
            _collect(found, str(path), _read(path, explicit=True))
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return found


def _files_under(directory: Path, notes: list[str]) -> Iterator[Path]:
    """Manifest files under `directory`, leaving out Helm charts (with a note each)."""
    charts = sorted(chart.parent for chart in directory.rglob(CHART_FILE) if chart.is_file())
    for chart in charts:
        notes.append(
            f"{chart}: skipped, a Helm chart (its templates are YAML only once rendered); "
            f"validate what it renders per values file: helm template {chart} -f <values.yaml> "
            "| kube-taskqueue validate -"
        )
    for file in sorted(directory.rglob("*")):
        if file.suffix not in MANIFEST_SUFFIXES or not file.is_file():
            continue
        if any(file.is_relative_to(chart) for chart in charts):
            continue
        if _is_helm_template(file):
            notes.append(
                f"{file}: skipped, a Helm template ({HELM_ACTION} ... }}}}); validate what it "
                "renders: helm template CHART | kube-taskqueue validate -"
            )
            continue
        yield file


def _is_helm_template(file: Path) -> bool:
    """A file of a chart's templates/ folder that holds template actions (a copied chart
    without its Chart.yaml, say)."""
    if TEMPLATES_DIR not in file.parent.parts:
        return False
    try:
        return HELM_ACTION in file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _read(path: Path, *, explicit: bool) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    try:
        return _parse(str(path), text, json_file=path.suffix == ".json")
    except ManifestError as error:
        if explicit and HELM_ACTION in text:
            raise ManifestError(
                f"{error}; it looks like a Helm template: validate what it renders, e.g. "
                "helm template CHART | kube-taskqueue validate -"
            ) from None
        raise


def _parse(source: str, text: str, *, json_file: bool) -> list[Any]:
    if json_file:
        # JSON is read as JSON: a tab-indented file is valid JSON but not valid YAML.
        try:
            return [json.loads(text)] if text.strip() else []
        except ValueError as error:
            raise ManifestError(f"{source}: not valid JSON: {error}") from None
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ManifestError(f"{source}: not valid YAML{where}: {problem}") from None


def _collect(found: Manifests, source: str, bodies: list[Any]) -> None:
    many = len(bodies) > 1
    for index, body in enumerate(bodies):
        label = f"{source}#{index}" if many else source
        for item_label, item in _items(label, body):
            if is_taskqueue(item):
                found.documents.append(Document(source=item_label, body=item))
            elif isinstance(item, dict) and _our_group(item):
                found.problems.append(
                    f"{item_label}: {item.get('apiVersion')} has no kind {item.get('kind')!r} "
                    f"(its only kind is {KIND}); the API server would refuse it"
                )


def _items(label: str, body: Any) -> Iterator[tuple[str, Any]]:
    """A document, or the items of a `kind: List` (what `kubectl get -o yaml` prints)."""
    if (
        isinstance(body, dict)
        and str(body.get("kind", "")).endswith("List")
        and isinstance(body.get("items"), list)
    ):
        for index, item in enumerate(body["items"]):
            yield f"{label} items[{index}]", item
    else:
        yield label, body
