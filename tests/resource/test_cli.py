"""`kube-taskqueue validate`, `render` and `crd` through the real console script."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import yaml

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"


def taskqueue(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKQUEUE), *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def write(path: Path, *documents) -> Path:
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_validate_accepts_valid_files_and_skips_other_kinds(tmp_path, manifest):
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    write(tmp_path / "a.yaml", other, manifest)
    result = taskqueue("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 TaskQueue(s) valid"


def test_validate_reports_every_problem_as_file_resource_message(tmp_path, manifest):
    bad = copy.deepcopy(manifest)
    bad["spec"]["processors"][1]["tasks"].append("cleanup:job")
    bad["spec"]["tasks"][0]["schedule"] = "whenever"
    path = write(tmp_path / "bad.yaml", bad)
    result = taskqueue("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert (
        f"{path}: billing/accounts: task 'partitions_maintenance:job' has an invalid cron schedule 'whenever' (expected five fields, e.g. '0 * * * *')"
        in lines
    )
    assert any(
        line.startswith(f"{path}: billing/accounts: queue 'shared' is split across processors")
        for line in lines
    )
    assert lines[-1] == "3 problem(s) found"


def test_validate_checks_across_files(tmp_path, manifest):
    write(tmp_path / "one.yaml", manifest)
    clone = copy.deepcopy(manifest)
    clone["metadata"]["name"] = "ledger"
    write(tmp_path / "two.yaml", clone)
    result = taskqueue("validate", str(tmp_path / "one.yaml"), str(tmp_path / "two.yaml"))
    assert result.returncode == 1
    assert (
        f"{tmp_path / 'two.yaml'}: billing/ledger: SQS queue 'accounts-dev-shared'" in result.stderr
    )


def test_validate_schema_errors_name_the_field_and_document(tmp_path, manifest):
    manifest["spec"]["queues"][0]["maxBatchSize"] = 11
    path = write(tmp_path / "multi.yaml", {"kind": "Other"}, manifest)
    result = taskqueue("validate", str(path))
    assert result.returncode == 1
    assert (
        f"{path}#1: billing/accounts: spec.queues.0.maxBatchSize: Input should be less than or equal to 10"
        in result.stderr
    )


def test_validate_unreadable_input_is_one_line_and_exit_2(tmp_path):
    result = taskqueue("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"kube-taskqueue: error: {tmp_path / 'missing.yaml'}: no such file or directory"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: TaskQueue\nspec: [unclosed\n")
    result = taskqueue("validate", str(broken))
    assert result.returncode == 2
    assert result.stderr.startswith(f"kube-taskqueue: error: {broken}: not valid YAML (line ")
    assert "Traceback" not in result.stderr


def test_render_prints_the_golden_stream(manifest, tmp_path):
    path = write(tmp_path / "tq.yaml", manifest)
    result = taskqueue("render", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (Path(__file__).parent / "golden" / "accounts.yaml").read_text()


def test_render_uses_the_given_namespace_for_manifests_without_one(manifest, tmp_path):
    del manifest["metadata"]["namespace"]
    result = taskqueue(
        "render", "-f", str(write(tmp_path / "tq.yaml", manifest)), "--namespace", "team-a"
    )
    assert result.returncode == 0, result.stderr
    assert {doc["metadata"]["namespace"] for doc in yaml.safe_load_all(result.stdout)} == {"team-a"}


def test_render_refuses_an_invalid_resource(manifest, tmp_path):
    manifest["spec"]["tasks"][2]["queue"] = "nowhere"
    result = taskqueue("render", "-f", str(write(tmp_path / "tq.yaml", manifest)))
    assert result.returncode == 1
    assert "uses queue 'nowhere'" in result.stderr
    assert result.stdout == ""


def test_crd_check_passes_on_the_checked_in_file():
    result = taskqueue("crd", "--check", cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
