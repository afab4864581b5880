"""A user's mistakes in `kube-taskqueue run` and `enqueue` end in one line naming the cause and
what to change, never a traceback: missing credentials, an unreachable endpoint, a busy
port, a malformed endpoint or region, an unknown log format."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import SUPPORT, free_port, processor_config, wait_for

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"


def write_config(tmp_path, data, name="processor.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = stderr.strip().splitlines()
    return line


def test_enqueue_without_credentials_says_none_were_found_and_where_boto3_looks(
    cli, tmp_path, sqs_endpoint, prefix, queues
):
    queues.create("work")
    config = write_config(tmp_path, processor_config(endpoint=sqs_endpoint, prefix=prefix))
    home = tmp_path / "home"  # no ~/.aws
    home.mkdir()
    result = cli(
        "enqueue",
        "--config",
        str(config),
        "--name",
        "record:job",
        '{"id": "x"}',
        drop=("AWS_",),
        env={"HOME": str(home)},
    )
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("kube-taskqueue: no AWS credentials were found; boto3 looks in ")
    for source in (
        "AWS_ACCESS_KEY_ID",
        "~/.aws/credentials",
        "AWS_PROFILE",
        "web identity",
        "instance metadata",
    ):
        assert source in line
    assert "cannot reach" not in line
    assert queues.counts("work") == (0, 0)


def test_enqueue_with_half_the_credentials_says_they_are_incomplete(
    cli, tmp_path, sqs_endpoint, prefix, queues
):
    queues.create("work")
    config = write_config(tmp_path, processor_config(endpoint=sqs_endpoint, prefix=prefix))
    home = tmp_path / "home"
    home.mkdir()
    result = cli(
        "enqueue",
        "--config",
        str(config),
        "--name",
        "record:job",
        '{"id": "x"}',
        drop=("AWS_",),
        env={"HOME": str(home), "AWS_ACCESS_KEY_ID": "testing"},
    )
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "incomplete AWS credentials" in line and "cannot reach" not in line


def test_enqueue_to_an_endpoint_nobody_listens_on_says_it_cannot_reach_it(cli, tmp_path, prefix):
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, processor_config(endpoint=endpoint, prefix=prefix))
    result = cli("enqueue", "--config", str(config), "--name", "record:job", '{"id": "x"}')
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(f"kube-taskqueue: cannot reach SQS at {endpoint}")


def test_enqueue_to_a_missing_queue_names_the_sqs_queue_and_the_settings(
    cli, tmp_path, sqs_endpoint, prefix
):
    config = write_config(tmp_path, processor_config(endpoint=sqs_endpoint, prefix=prefix))
    result = cli("enqueue", "--config", str(config), "--name", "record:job", '{"id": "x"}')
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert f"queue 'work' of task 'record:job' is SQS queue '{prefix}work'" in line
    assert "sqs.queuePrefix" in line


def test_run_on_a_busy_port_is_one_line_naming_the_config_key(cli, tmp_path, sqs_endpoint, prefix):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = processor_config(endpoint=sqs_endpoint, prefix=prefix)
        data["http"] = {"host": "127.0.0.1", "port": port}
        config = write_config(tmp_path, data)
        result = cli("run", "--config", str(config))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(
        f"kube-taskqueue: error: cannot serve /healthz and /metrics on 127.0.0.1:{port}: "
    )
    assert f"set http.port in {config}" in line


def test_run_on_a_host_that_is_not_local_names_the_host_setting(
    cli, tmp_path, sqs_endpoint, prefix
):
    data = processor_config(endpoint=sqs_endpoint, prefix=prefix)
    data["http"] = {"host": "192.0.2.1", "port": 0}  # TEST-NET-1: never this machine's
    result = cli("run", "--config", str(write_config(tmp_path, data)))
    assert result.returncode == 2
    assert "set http.host" in one_line(result.stderr)


@pytest.mark.parametrize("command", ["run", "enqueue"])
@pytest.mark.parametrize(
    ("sqs", "expected"),
    [
        ({"endpoint": "localhost:9324"}, "sqs.endpoint: 'localhost:9324' is not a URL"),
        ({"region": "eu west 1"}, "sqs.region: 'eu west 1' is not a region name"),
    ],
)
def test_a_malformed_endpoint_or_region_is_a_config_error(cli, tmp_path, command, sqs, expected):
    data = processor_config(endpoint="http://127.0.0.1:1", prefix="x-")
    data["sqs"].update(sqs)
    config = write_config(tmp_path, data)
    args = ["--name", "record:job", '{"id": "x"}'] if command == "enqueue" else []
    result = cli(command, "--config", str(config), *args)
    assert result.returncode == 2
    assert expected in one_line(result.stderr)


def test_an_unknown_log_format_is_refused_naming_the_variable(cli, tmp_path, sqs_endpoint, prefix):
    config = write_config(tmp_path, processor_config(endpoint=sqs_endpoint, prefix=prefix))
    result = cli("run", "--config", str(config), env={"TASKQUEUE_LOG_FORMAT": "txt"})
    assert result.returncode == 2
    assert "TASKQUEUE_LOG_FORMAT is 'txt'; use one of json, text" in one_line(result.stderr)


def test_run_without_credentials_logs_that_none_were_found(tmp_path, sqs_endpoint, prefix, queues):
    # The processor keeps retrying (a pod's identity may appear late); its log says why.
    queues.create("work")
    queues.create("other")
    config = write_config(tmp_path, processor_config(endpoint=sqs_endpoint, prefix=prefix))
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(HOME=str(home), PYTHONPATH=str(SUPPORT))
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(TASKQUEUE), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        wait_for(lambda: "no AWS credentials were found" in log.read_text(), timeout=60)
    finally:
        process.kill()
        process.wait(10)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    problem = next(line for line in lines if "no AWS credentials" in line["message"])
    assert re.match(
        rf"cannot look up queue '(work|other)' \(SQS name '{prefix}(work|other)'\): "
        "no AWS credentials were found; boto3 looks in ",
        problem["message"],
    ), problem["message"]
    assert "cannot reach" not in problem["message"]
