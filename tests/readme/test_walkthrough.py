"""The getting-started path walked through as a new user does, commands taken from the pages
that print them: `make dev` and the command it prints (README.md), the example app with
`enqueue` and `run` (docs/getting-started/local.md), `validate` and `render` on a deploy/
directory (docs/how-to/gitops.md), a rendered chart validated through stdin
(docs/how-to/multi-environment-helm.md), and the CRD installed with the printed kubectl command
(docs/getting-started/cluster.md).

Two substitutions, both of a user's own environment: processor.yaml's SQS endpoint and HTTP
port (placeholders in the page) point at the test's SQS server and a free port. The operator
and Helm commands need a cluster and an SQS endpoint of the user's (the example manifest names
a host outside this machine), so they are exercised by tests/chart and tests/operator instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import readme
import yaml
from harness import wait_for

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
MESSAGE_ID = re.compile(r"^[0-9a-f-]{36}$")

# The pages each step's blocks and commands come from.
LOCAL = readme.Markdown("docs/getting-started/local.md")
CLUSTER = readme.Markdown("docs/getting-started/cluster.md")
GITOPS = readme.Markdown("docs/how-to/gitops.md")
ENVIRONMENTS = readme.Markdown("docs/how-to/multi-environment-helm.md")


def fresh_terminal_env(home: Path) -> dict[str, str]:
    """A new shell: no AWS variables, no venv on PATH, an empty home."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != BIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV"))}
    env.update(PATH=path, HOME=str(home))
    return env


def test_make_dev_prints_a_command_that_works_pasted_into_a_new_terminal(tmp_path):
    assert readme.command("make dev") == ["make", "dev"]
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "dev.out"
    with out.open("wb") as sink:
        dev = subprocess.Popen(
            ["make", "dev"], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: "Ctrl-C stops" in out.read_text(), timeout=120)
        [printed] = [
            line.strip() for line in out.read_text().splitlines() if " enqueue --config " in line
        ]
        env = fresh_terminal_env(home)
        assert shutil.which("kube-taskqueue", path=env["PATH"]) is None
        pasted = subprocess.run(
            ["bash", "-c", printed],
            env=env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert pasted.returncode == 0, f"{printed}\n{pasted.stderr}"
        message_id = pasted.stdout.strip()
        assert MESSAGE_ID.match(message_id)
        wait_for(lambda: f"message={message_id}" in out.read_text(), timeout=60)
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole group
        dev.wait(timeout=60)
    text = out.read_text()
    assert "stopped" in text
    assert "Traceback" not in text


@pytest.fixture
def readme_project(tmp_path, sqs_endpoint, sqs) -> Path:
    """The local page's myapp/tasks.py and processor.yaml, as a user copies them."""
    project = tmp_path / "project"
    (project / "myapp").mkdir(parents=True)
    (project / "myapp" / "__init__.py").write_text("")
    (project / "myapp" / "tasks.py").write_text(LOCAL.block_starting("python", "# myapp/tasks.py"))
    config = yaml.safe_load(LOCAL.block_starting("yaml", "# processor.yaml"))
    config["sqs"]["endpoint"] = sqs_endpoint
    config["http"]["port"] = 0
    (project / "processor.yaml").write_text(yaml.safe_dump(config))
    sqs.create_queue(QueueName=f"{config['sqs']['queuePrefix']}example_queue")
    return project


def test_the_example_app_enqueues_and_runs_as_the_page_prints(readme_project, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(readme_project)}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # the venv is active in the user's shell
    enqueue = LOCAL.command("kube-taskqueue enqueue")
    sent = subprocess.run(
        enqueue,
        cwd=readme_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    assert MESSAGE_ID.match(sent.stdout.strip())

    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        run = subprocess.Popen(
            LOCAL.command("kube-taskqueue run"),
            cwd=readme_project,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        # The page's task prints its payload; its messages are delayed by 5 s.
        wait_for(lambda: "got value attempt 1" in log.read_text(), timeout=60)
    finally:
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0, log.read_text()[-2000:]


def test_validate_and_render_run_on_a_deploy_directory(tmp_path):
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(ROOT / "examples" / "manifests" / "accounts.yaml", deploy / "app.yaml")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    validate = subprocess.run(
        GITOPS.command("kube-taskqueue validate deploy/"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 0, validate.stderr
    # With the platform's policies (the example's, which allows what accounts.yaml uses).
    (tmp_path / "platform" / "policies").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "manifests" / "policy.yaml", tmp_path / "platform" / "policies")
    checked = subprocess.run(
        GITOPS.command("kube-taskqueue validate --policy"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    render = subprocess.run(
        GITOPS.command("kube-taskqueue render"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert render.returncode == 0, render.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(render.stdout) if d]
    assert "Deployment" in kinds and "QueuePlan" not in kinds


@pytest.mark.kube
def test_the_crd_installs_with_the_printed_kubectl_command(control_plane):
    words = CLUSTER.command("kubectl apply --server-side -f crds/")
    env = {
        **os.environ,
        "KUBECONFIG": str(control_plane.kubeconfig),
        "PATH": f"{control_plane.kubectl.parent}{os.pathsep}{os.environ['PATH']}",
    }
    applied = subprocess.run(
        words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert applied.returncode == 0, applied.stderr
    listed = subprocess.run(
        CLUSTER.command("kubectl get tq -A"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr


@pytest.mark.kube
@pytest.mark.parametrize("values", ["printed", "chart defaults"])
def test_a_rendered_chart_validates_through_stdin(control_plane, values):
    [pipeline] = [
        c for c in ENVIRONMENTS.commands() if c.startswith("helm template accounts-tasks")
    ]
    if values == "chart defaults":  # no sqs values: the operator's defaults are used
        pipeline = pipeline.replace(" -f examples/app-chart/values-prod.yaml", "")
        pipeline += " --default-region eu-west-1"
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(control_plane.helm.parent), str(BIN), os.environ["PATH"]]),
    }
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{pipeline}\n{result.stderr}"
    assert result.stdout.strip() == "1 TaskQueue(s) valid"
