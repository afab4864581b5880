"""`kube-taskqueue operator` started where it cannot work: one line saying why, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from harness import free_port

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"


def run_operator(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKQUEUE), "operator"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def bare_environment(home: Path, **extra: str) -> dict[str, str]:
    """No kubeconfig, not in a pod: only PATH and an empty HOME."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
        and not key.startswith("TASKQUEUE_")
    }
    return {**env, "HOME": str(home), **extra}


def test_without_credentials_it_says_where_it_looked_in_one_line(tmp_path):
    result = run_operator(bare_environment(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "kube-taskqueue operator: no Kubernetes credentials: not in a pod "
        "(KUBERNETES_SERVICE_HOST is not set); KUBECONFIG is not set and ~/.kube/config does "
        "not exist. Run it in a pod with a service account, or set KUBECONFIG to a kubeconfig "
        "file"
    ]
    assert result.stdout == ""


def test_a_kubeconfig_that_is_missing_or_broken_is_named(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    result = run_operator(bare_environment(tmp_path, KUBECONFIG=str(missing)))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert f"KUBECONFIG={missing} does not exist." in line
    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters: [unclosed\n")
    result = run_operator(bare_environment(tmp_path, KUBECONFIG=str(broken)))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert f"KUBECONFIG={broken} is not valid YAML." in line


def test_an_api_server_that_does_not_answer_is_one_line(tmp_path):
    port = free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    result = run_operator(bare_environment(tmp_path, KUBECONFIG=str(kubeconfig)))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kube-taskqueue operator: cannot use the Kubernetes API server at "
        f"https://127.0.0.1:{port}: Failed to establish a new connection: [Errno 111] "
        "Connection refused"
    ]


def test_refused_credentials_are_one_line(control_plane, tmp_path):
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "not-a-valid-token"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    result = run_operator(bare_environment(tmp_path, KUBECONFIG=str(kubeconfig)))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"kube-taskqueue operator: cannot use the Kubernetes API server at {control_plane.url}: "
        "401 Unauthorized (the credentials were refused)"
    ]


def test_a_stopped_operator_leaves_no_webhook_key_behind(start_operator, tmp_path):
    operator = start_operator()
    [keys] = tmp_path.glob("taskqueue-webhook-*")
    assert any(keys.iterdir())  # the certificate and key it serves with
    operator.stop()
    assert list(tmp_path.glob("taskqueue-webhook-*")) == []
