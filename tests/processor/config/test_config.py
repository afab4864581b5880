"""The configuration file: defaults, bounds, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_taskqueue.config import (
    ConfigError,
    ProcessorConfig,
    QueueSettings,
    load_config,
    parse_config,
)


def test_the_issue_example_parses(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(
        """
app: myapp.tasks:provider
processor: main
tasks: ["a:job", "b:job"]
workers: 8
sqs: {endpoint: http://127.0.0.1:5000, region: us-east-1, queuePrefix: "dev-"}
queues:
  shared: {pollInterval: 10, messageVisibilityTimeout: 30, maxBatchSize: 10}
"""
    )
    config = load_config(path)
    assert config.tasks == ["a:job", "b:job"]
    assert config.physical_name("shared") == "dev-shared"
    assert config.queue_settings("shared").wait_seconds == 10
    assert config.sqs.endpoint == "http://127.0.0.1:5000"


def test_defaults_are_pinned():
    queue = QueueSettings()
    assert (queue.poll_interval, queue.message_visibility_timeout, queue.max_batch_size) == (
        10,
        30,
        10,
    )
    assert (queue.retry_backoff_initial, queue.retry_backoff_max) == (5, 900)
    config = ProcessorConfig(app="a:b")
    assert (config.workers, config.shutdown_timeout, config.stall_timeout) == (8, 30, 120)
    assert config.http.port == 8080
    assert config.sqs.region == "us-east-1" and config.sqs.queue_prefix == ""
    # An undeclared queue is polled with the defaults.
    assert config.queue_settings("anything") == QueueSettings()


def test_long_poll_wait_is_capped_at_sqs_limit():
    assert QueueSettings(pollInterval=60).wait_seconds == 20


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"app": "a:b", "queues": {"q": {"maxBatchSize": 11}}}, "queues.q.maxBatchSize"),
        ({"app": "a:b", "queues": {"q": {"maxBatchSize": 0}}}, "queues.q.maxBatchSize"),
        ({"app": "a:b", "queues": {"q": {"pollInterval": 0}}}, "queues.q.pollInterval"),
        (
            {"app": "a:b", "queues": {"q": {"messageVisibilityTimeout": 1}}},
            "queues.q.messageVisibilityTimeout",
        ),
        ({"app": "a:b", "workers": 0}, "workers"),
        ({"app": "a:b", "sqs": {"regoin": "x"}}, "sqs.regoin"),
        ({"app": "not an import path"}, "app"),
        ({}, "app"),
    ],
)
def test_invalid_fields_are_named(data, field):
    with pytest.raises(ConfigError) as error:
        parse_config(data, source="c.yaml")
    assert str(error.value).startswith("c.yaml: invalid configuration:")
    assert field in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        parse_config({"app": "a:b", "workers": -1, "shutdownTimeout": -1}, source="c.yaml")
    assert "workers" in str(error.value) and "shutdownTimeout" in str(error.value)


def test_unreadable_and_non_yaml_files_give_one_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("app: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping, got list"):
        load_config(listed)


@pytest.mark.parametrize(
    ("field", "value", "use"),
    [
        ("retryBackoffInitial", 0.5, 1),
        ("retryBackoffMax", 2.5, 3),
        ("pollInterval", 0.5, 1),
        ("pollInterval", 1.5, 2),
    ],
)
def test_fractional_seconds_are_refused_naming_the_field(field, value, use):
    # Before, int() cut them: retryBackoffInitial 0.5 retried at once, pollInterval 0.5 was a
    # long poll of 0 s (polling without pause). SQS counts both in whole seconds.
    with pytest.raises(ConfigError) as error:
        parse_config({"app": "a:b", "queues": {"q": {field: value}}}, source="c.yaml")
    message = str(error.value)
    assert f"queues.q.{field}: {value} is not a whole number of seconds" in message
    assert "SQS counts" in message and "in whole seconds" in message
    assert f"(use {use})" in message


def test_whole_seconds_written_as_floats_are_accepted():
    queue = parse_config(
        {"app": "a:b", "queues": {"q": {"retryBackoffInitial": 2.0, "retryBackoffMax": 60.0}}},
        source="c.yaml",
    ).queues["q"]
    assert (queue.retry_backoff_initial, queue.retry_backoff_max) == (2, 60)
    assert isinstance(queue.retry_backoff_initial, int)


def test_an_initial_backoff_above_the_cap_is_refused_when_both_are_set():
    # Before, every retry silently waited retryBackoffMax. The operator's CRD has this rule.
    with pytest.raises(ConfigError) as error:
        parse_config(
            {"app": "a:b", "queues": {"q": {"retryBackoffInitial": 60, "retryBackoffMax": 10}}},
            source="c.yaml",
        )
    assert "queues.q: retryBackoffInitial (60) must not exceed retryBackoffMax (10)" in str(
        error.value
    )
    # A cap alone below the default initial delay is a cap, as before.
    only_cap = QueueSettings(retryBackoffMax=3)
    assert (only_cap.retry_backoff_initial, only_cap.retry_backoff_max) == (5, 3)
