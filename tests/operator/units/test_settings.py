"""Operator settings from TASKQUEUE_* variables: defaults pinned, lists, errors."""

from __future__ import annotations

import pydantic
import pytest
from kube_taskqueue_operator.settings import OperatorSettings, from_environment


def test_defaults_are_pinned():
    settings = from_environment({})
    assert settings == OperatorSettings()
    assert (settings.drift_interval, settings.status_interval) == (180, 30)
    assert settings.namespaces == [] and settings.peering is None
    assert (settings.webhook_enabled, settings.webhook_port, settings.webhook_managed) == (
        True,
        9443,
        False,
    )
    assert settings.field_manager == "kube-taskqueue-operator"


def test_environment_values_are_parsed():
    settings = from_environment(
        {
            "TASKQUEUE_NAMESPACES": "a, b,",
            "TASKQUEUE_DRIFT_INTERVAL": "60",
            "TASKQUEUE_DEFAULT_REGION": "eu-west-1",
            "TASKQUEUE_WEBHOOK_ENABLED": "false",
            "OTHER": "x",
        }
    )
    assert settings.namespaces == ["a", "b"]
    assert settings.drift_interval == 60
    assert settings.sqs_defaults.region == "eu-west-1"
    assert settings.webhook_enabled is False


def test_a_bad_value_names_the_setting():
    with pytest.raises(pydantic.ValidationError, match="drift_interval"):
        from_environment({"TASKQUEUE_DRIFT_INTERVAL": "-1"})


def test_an_unknown_failpoint_names_the_variable():
    with pytest.raises(pydantic.ValidationError) as error:
        from_environment({"TASKQUEUE_FAILPOINT": "bogus"})
    from kube_taskqueue_operator.settings import describe

    assert describe(error.value) == [
        "TASKQUEUE_FAILPOINT: unknown failpoint 'bogus' (known: after-queues, after-configmap, "
        "before-status)"
    ]


def test_the_issued_certificate_defaults_follow_cert_manager():
    settings = OperatorSettings()
    assert settings.webhook_cert_validity == 90 * 24 * 3600
    assert settings.webhook_cert_check_interval == 60


def test_the_issued_certificate_names_the_service():
    settings = from_environment(
        {
            "TASKQUEUE_WEBHOOK_CERT_SECRET": "tls",
            "TASKQUEUE_WEBHOOK_NAMESPACE": "ops",
            "TASKQUEUE_WEBHOOK_SERVICE": "hook",
        }
    )
    assert settings.webhook_hosts == ("hook.ops.svc", "hook.ops.svc.cluster.local")


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"TASKQUEUE_WEBHOOK_CERT_SECRET": "tls"}, "needs TASKQUEUE_WEBHOOK_NAMESPACE"),
        (
            {"TASKQUEUE_WEBHOOK_CERT_SECRET": "tls", "TASKQUEUE_WEBHOOK_NAMESPACE": "ops"},
            "needs TASKQUEUE_WEBHOOK_SERVICE or TASKQUEUE_WEBHOOK_HOST",
        ),
        (
            {
                "TASKQUEUE_WEBHOOK_CERT_SECRET": "tls",
                "TASKQUEUE_WEBHOOK_CERT_DIR": "/etc/tls",
                "TASKQUEUE_WEBHOOK_NAMESPACE": "ops",
                "TASKQUEUE_WEBHOOK_HOST": "localhost",
            },
            "not both",
        ),
    ],
)
def test_certificate_settings_that_cannot_work_are_refused(environment, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        from_environment(environment)


def test_the_operator_refuses_bad_settings_naming_the_variable(monkeypatch, capsys):
    from kube_taskqueue_operator.main import run

    monkeypatch.setenv("TASKQUEUE_DRIFT_INTERVAL", "-3")
    monkeypatch.setenv("TASKQUEUE_WEBHOOK_CERT_SECRET", "tls")
    assert run([]) == 2
    error = capsys.readouterr().err
    assert "TASKQUEUE_DRIFT_INTERVAL: Input should be greater than 0" in error
    assert "Traceback" not in error
