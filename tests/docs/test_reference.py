"""The generated references (docs/reference/) match the code, and the code documents what
they show: every CRD field, configuration field, operator setting, CLI argument, chart value
and public name of the task API has its prose. The site builds strictly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import griffe
import pytest
import yaml

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT / "hack" / "docs"))

import reference  # noqa: E402
from cli_reference import _commands, _documented  # noqa: E402
from schema_reference import Walker  # noqa: E402
from values_reference import prose, reference_keys, schema_at  # noqa: E402

CHART = ROOT / "charts" / "kube-taskqueue-operator"


def test_the_checked_in_reference_pages_are_what_the_code_generates():
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "docs" / "reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_check_names_a_stale_page(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "REFERENCE", tmp_path)
    rendered = reference.render()
    for path, text in rendered.items():
        (tmp_path / path.name).write_text(text)
    (tmp_path / "cli.md").write_text("# CLI\n\nedited by hand\n")
    assert [p.name for p in reference.stale(reference.render())] == ["cli.md"]


@pytest.mark.parametrize("crd", sorted((ROOT / "crds").glob("*.yaml")), ids=lambda p: p.name)
def test_every_crd_field_has_a_description(crd):
    schema = yaml.safe_load(crd.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    walker = Walker()
    for part in ("spec", "status"):
        if part in schema["properties"]:
            walker.walk(schema["properties"][part], part)
    assert len(walker.fields) > 10
    assert [f.path for f in walker.fields if not f.description] == []
    assert all(rule.message for rule in walker.rules)


def test_every_processor_config_field_and_operator_setting_has_a_description():
    from kube_taskqueue.config import ProcessorConfig
    from kube_taskqueue_operator.settings import OperatorSettings

    schema = ProcessorConfig.model_json_schema()
    walker = Walker(schema["$defs"])
    for name, node in schema["properties"].items():
        walker.walk(node, name)
    assert [f.path for f in walker.fields if not f.description] == []
    assert [n for n, f in OperatorSettings.model_fields.items() if not f.description] == []


def test_every_cli_argument_has_help():
    from kube_taskqueue.cli.main import build_parser as processor_parser
    from kube_taskqueue_operator.cli import build_parser as operator_parser

    missing: list[str] = []

    def visit(prefix: str, parser) -> None:
        for action in parser._actions:
            if _documented(action) and not action.help:
                missing.append(f"{prefix} {action.dest}")
        for name, sub, summary in _commands(parser):
            if not summary:
                missing.append(f"{prefix} {name}")
            visit(f"{prefix} {name}", sub)

    visit("kube-taskqueue", processor_parser())
    visit("kube-taskqueue", operator_parser())
    assert missing == []


def test_every_chart_value_has_a_type_a_default_and_prose():
    text = (CHART / "values.yaml").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    keys = reference_keys(text, schema)
    sections = {k.path[:-1] for k in keys}
    leaves = [k for k in keys if k.path not in sections]
    assert len(leaves) > 50
    assert [".".join(k.path) for k in leaves if not prose(k.comment)] == []
    assert [".".join(k.path) for k in leaves if not schema_at(schema, k.path)] == []
    # Every key of values.yaml is on the page (the parser missed none).
    values = yaml.safe_load(text)
    top_level = {k.path[0] for k in keys}
    assert top_level == set(values)


def test_every_public_name_of_the_task_api_is_documented():
    package = griffe.load("kube_taskqueue", search_paths=[str(ROOT / "processor")])
    import kube_taskqueue

    undocumented: list[str] = []
    for name in kube_taskqueue.__all__:
        member = package[name]
        target = member.final_target if member.is_alias else member
        if not target.docstring:
            undocumented.append(name)
        if target.is_class:
            for method in target.members.values():
                if method.is_function and not method.name.startswith("_") and not method.docstring:
                    undocumented.append(f"{name}.{method.name}")
    assert undocumented == []
    page = (ROOT / "docs" / "reference" / "python-api.md").read_text()
    assert [n for n in kube_taskqueue.__all__ if f"::: kube_taskqueue.{n}\n" not in page] == []


def test_the_site_builds_strictly(tmp_path):
    """A broken link, a missing page or anchor, or an API name mkdocstrings cannot find
    fails the build (`make docs` runs the same command)."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "mkdocs"),
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "python-api" / "index.html").exists()
