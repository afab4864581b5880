"""`kube-taskqueue validate`, `render` and `crd` through the real console script, run the way
a user runs them: files, directories, stdin from a pipe."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"
ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).parent / "golden" / "accounts.yaml"


def taskqueue(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKQUEUE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        input=stdin,
        env=env,
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
    bad["spec"]["tasks"][0]["schedule"] = "61 * * * *"
    path = write(tmp_path / "bad.yaml", bad)
    result = taskqueue("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert (
        f"{path}: billing/accounts: task 'partitions_maintenance:job' has an invalid cron schedule '61 * * * *': minute field '61' is out of range 0-59"
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


def test_validate_says_what_an_empty_value_is_instead_of_naming_a_python_class(tmp_path, manifest):
    manifest["spec"]["sqs"] = None  # what `sqs:` with nothing under it reads as
    result = taskqueue("validate", str(write(tmp_path / "tq.yaml", manifest)))
    assert result.returncode == 1
    assert "spec.sqs: expected a mapping, got an empty value (null)" in result.stderr
    assert "SqsSpec" not in result.stderr


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
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind")
    result = taskqueue("validate", str(binary))
    assert (result.returncode, result.stderr.strip()) == (
        2,
        f"kube-taskqueue: error: {binary}: not UTF-8 text (byte 0 is 0xff)",
    )


# -- stdin, charts, kubectl's formats -------------------------------------------------------


def test_validate_reads_stdin_as_kubectl_does(manifest):
    text = yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace"}, manifest])
    result = taskqueue("validate", "-", stdin=text)
    assert (result.returncode, result.stdout.strip()) == (0, "1 TaskQueue(s) valid"), result.stderr
    manifest["spec"]["tasks"][2]["queue"] = "nowhere"
    result = taskqueue("validate", "-", stdin=yaml.safe_dump(manifest))
    assert result.returncode == 1
    assert "<stdin>: billing/accounts: task 'example:job' uses queue 'nowhere'" in result.stderr


def test_validate_reads_what_kubectl_get_prints_and_json_files(tmp_path, manifest):
    listing = {"apiVersion": "v1", "kind": "List", "items": [manifest]}
    result = taskqueue("validate", "-", stdin=yaml.safe_dump(listing))
    assert (result.returncode, result.stdout.strip()) == (0, "1 TaskQueue(s) valid"), result.stderr
    # kubectl apply -f DIR reads .json too; a tab-indented file is JSON, not YAML.
    (tmp_path / "tq.json").write_text(json.dumps(manifest, indent="\t"))
    result = taskqueue("validate", str(tmp_path))
    assert (result.returncode, result.stdout.strip()) == (0, "1 TaskQueue(s) valid"), result.stderr


def test_a_misspelt_kind_of_our_group_is_a_problem_not_silence(manifest):
    manifest["kind"] = "Taskqueue"
    result = taskqueue("validate", "-", stdin=yaml.safe_dump(manifest))
    assert result.returncode == 1
    assert (
        "<stdin>: taskqueue.dev/v1alpha1 has no kind 'Taskqueue' (its kinds are TaskQueue and TaskQueuePolicy)"
        in result.stderr
    )


def test_validate_on_the_examples_skips_the_app_chart_with_a_note():
    result = taskqueue("validate", "examples/", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (
        "kube-taskqueue: note: examples/app-chart: skipped, a Helm chart (its templates are YAML "
        "only once rendered); validate what it renders per values file: helm template "
        "examples/app-chart -f <values.yaml> | kube-taskqueue validate -"
    ) in result.stderr.splitlines()
    assert result.stdout.strip() == (
        "1 TaskQueue(s) valid (1 Helm chart(s) or template(s) skipped, see above)"
    )


def test_templates_of_a_chart_without_its_chart_yaml_are_skipped_too(tmp_path, manifest):
    shutil.copytree(EXAMPLES / "app-chart" / "templates", tmp_path / "templates")
    write(tmp_path / "plain.yaml", manifest)
    result = taskqueue("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'templates' / 'taskqueue.yaml'}: skipped, a Helm template" in result.stderr


def test_a_template_named_on_the_command_line_says_how_to_validate_it():
    template = EXAMPLES / "app-chart" / "templates" / "taskqueue.yaml"
    result = taskqueue("validate", str(template))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.endswith(
        "it looks like a Helm template: validate what it renders, e.g. helm template CHART | "
        "kube-taskqueue validate -"
    )


@pytest.fixture(scope="module")
def helm() -> Path:
    from controlplane import assets_dir

    return assets_dir(("helm",)) / "helm"


@pytest.mark.parametrize(
    ("values", "flags"),
    [("values-prod.yaml", []), ("values-dev.yaml", ["--default-region", "eu-west-1"])],
)
def test_helm_template_piped_into_validate(helm, values, flags):
    """The GitOps pattern for charts, as a shell pipeline with the real helm."""
    chart = EXAMPLES / "app-chart"
    command = (
        f"{helm} template accounts-tasks {chart} -n billing -f {chart / values} "
        f"| {TASKQUEUE} validate - {' '.join(flags)}"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 TaskQueue(s) valid"


# -- render ---------------------------------------------------------------------------------


def test_render_prints_the_golden_stream(manifest, tmp_path):
    path = write(tmp_path / "tq.yaml", manifest)
    result = taskqueue("render", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == GOLDEN.read_text()


def test_render_prints_only_kubernetes_objects_and_the_queues_as_a_comment(manifest):
    result = taskqueue("render", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in documents] == [
        "ConfigMap",
        "Deployment",
        "ConfigMap",
        "Deployment",
        "CronJob",
    ]
    assert result.stdout.startswith("# SQS queues of TaskQueue billing/accounts")
    assert "#     name: accounts-dev-shared\n" in result.stdout


def test_render_queues_prints_the_plan_alone(manifest, tmp_path):
    clone = copy.deepcopy(manifest)
    clone["metadata"]["name"] = "ledger"
    clone["spec"]["sqs"]["queuePrefix"] = "ledger-"
    path = write(tmp_path / "two.yaml", manifest, clone)
    result = taskqueue("render", "--queues", "-f", str(path))
    assert result.returncode == 0, result.stderr
    plans = list(yaml.safe_load_all(result.stdout))
    assert [(p["kind"], p["metadata"]["name"]) for p in plans] == [
        ("QueuePlan", "accounts"),
        ("QueuePlan", "ledger"),
    ]
    assert plans[1]["queues"][0]["name"] == "ledger-shared"


def test_render_help_says_what_is_printed():
    result = taskqueue("render", "--help")
    assert "kubectl apply -f -" in result.stdout
    assert "--queues" in result.stdout and "QueuePlan" in result.stdout


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


# -- crd ------------------------------------------------------------------------------------


def test_crd_check_passes_on_the_checked_in_file():
    result = taskqueue("crd", "--check", cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_crd_write_outside_a_checkout_says_so_in_one_line(tmp_path):
    """Installed from a wheel, the package sits in site-packages with no crds/ beside it."""
    site = tmp_path / "site-packages"
    shutil.copytree(
        ROOT / "operator" / "kube_taskqueue_operator",
        site / "kube_taskqueue_operator",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    for flag in ("--write", "--check"):
        result = taskqueue("crd", flag, cwd=tmp_path, env=env)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith("kube-taskqueue: error: crd --write and --check work in a source")
        assert line.endswith("kube-taskqueue crd | kubectl apply --server-side -f -")
    assert not (tmp_path / "crds").exists()
    # The CRD itself prints anywhere.
    result = taskqueue("crd", cwd=tmp_path, env=env)
    assert result.returncode == 0 and "kind: CustomResourceDefinition" in result.stdout
