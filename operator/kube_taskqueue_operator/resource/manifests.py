"""Reading TaskQueue manifests from files and directories (multi-document YAML)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from kube_taskqueue_operator.resource.models import GROUP, KIND

YAML_SUFFIXES = (".yaml", ".yml")


class ManifestError(ValueError):
    """A path that cannot be read or is not YAML; the message names it."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Document:
    source: str
    """`file` or `file#index` for the n-th document of a multi-document file."""
    body: dict[str, Any]


def is_taskqueue(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.get("kind") == KIND
        and str(body.get("apiVersion", "")).split("/")[0] == GROUP
    )


def files_under(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ManifestError(f"{path}: no such file or directory")
    return found


def load_taskqueues(paths: Iterable[str | Path]) -> list[Document]:
    """Every TaskQueue document under the paths; other kinds are skipped."""
    documents = []
    for path in files_under(paths):
        try:
            bodies = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except OSError as error:
            raise ManifestError(f"{path}: cannot read: {error.strerror}") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ManifestError(f"{path}: not valid YAML{where}: {problem}") from None
        many = len(bodies) > 1
        for index, body in enumerate(bodies):
            if is_taskqueue(body):
                source = f"{path}#{index}" if many else str(path)
                documents.append(Document(source=source, body=body))
    return documents
