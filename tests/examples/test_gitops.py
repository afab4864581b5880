"""The GitOps examples: the app team's chart renders valid TaskQueues per environment, the
Argo CD health check reads Ready and observedGeneration, and no tracking label leaks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lupa
import pytest
import yaml
from kube_taskqueue_operator.resource.render import render
from kube_taskqueue_operator.resource.validation import parse

EXAMPLES = Path(__file__).parents[2] / "examples"
TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_app_chart_renders_a_valid_taskqueue_per_environment(control_plane, tmp_path, env):
    chart = EXAMPLES / "app-chart"
    rendered = subprocess.run(
        [
            str(control_plane.helm),
            "template",
            "accounts-tasks",
            str(chart),
            "-n",
            "billing",
            "-f",
            str(chart / f"values-{env}.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    path = tmp_path / "out.yaml"
    path.write_text(rendered)
    result = subprocess.run(
        [str(TASKQUEUE), "validate", str(path), "--default-region", "us-east-1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [document] = yaml.safe_load_all(rendered)
    assert document["spec"]["sqs"]["queuePrefix"] == f"accounts-{env}-"


def health(obj: dict) -> dict:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (EXAMPLES / "argocd" / "taskqueue-health.lua").read_text()
    function = runtime.eval(f"function(obj) {script} end")
    result = function(_to_lua(runtime, obj))
    return {"status": result["status"], "message": result["message"]}


def _to_lua(runtime, value):
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        (
            {
                "observedGeneration": 1,
                "conditions": [{"type": "Ready", "status": "True", "message": "ok"}],
            },
            "Progressing",
        ),
        (
            {
                "observedGeneration": 2,
                "conditions": [{"type": "Ready", "status": "True", "message": "ok"}],
            },
            "Healthy",
        ),
        (
            {
                "observedGeneration": 2,
                "conditions": [{"type": "Ready", "status": "False", "message": "SQS down"}],
            },
            "Degraded",
        ),
        (
            {
                "observedGeneration": 2,
                "conditions": [
                    {"type": "Ready", "status": "False", "message": "x"},
                    {"type": "Invalid", "status": "True", "message": "split"},
                ],
            },
            "Degraded",
        ),
    ],
)
def test_argocd_health_check(status, expected):
    obj = {"metadata": {"generation": 2}}
    if status is not None:
        obj["status"] = status
    assert health(obj)["status"] == expected


def test_argo_tracking_labels_and_annotations_are_never_copied():
    manifest = yaml.safe_load((EXAMPLES / "manifests" / "accounts.yaml").read_text())
    manifest["metadata"]["labels"] = {"app.kubernetes.io/instance": "accounts-tasks-prod"}
    manifest["metadata"]["annotations"] = {
        "argocd.argoproj.io/tracking-id": "accounts-tasks-prod:taskqueue.dev/TaskQueue:billing/accounts"
    }
    for obj in render(parse(manifest)):
        text = yaml.safe_dump(obj)
        assert "argocd.argoproj.io" not in text
        assert "app.kubernetes.io/instance" not in text
