"""TaskQueuePolicy rules: the one check behind the webhook, the reconcile and `validate`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from kube_taskqueue_operator.resource.policy import (
    PolicyRules,
    Tenancy,
    parse_policy,
    parse_rules,
    tenancy_from_documents,
)
from kube_taskqueue_operator.resource.validation import parse
from kube_taskqueue_operator.settings import describe, from_environment


def resource(namespace: str = "team-a", **sqs: Any) -> Any:
    spec: dict[str, Any] = {
        "image": "registry.example.com/team-a/app:1",
        "app": "app.tasks:provider",
        "sqs": {"region": "eu-west-1", "queuePrefix": f"{namespace}_", **sqs},
        "queues": [{"name": "work"}],
        "tasks": [{"name": "t", "queue": "work"}],
        "processors": [{"name": "main", "tasks": ["t"]}],
    }
    return spec, namespace


def build(spec_and_namespace: tuple[dict[str, Any], str], **spec: Any) -> Any:
    base, namespace = spec_and_namespace
    return parse(
        {
            "apiVersion": "taskqueue.dev/v1alpha1",
            "kind": "TaskQueue",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {**base, **spec},
        }
    )


def policy(name: str, **spec: Any) -> Any:
    return parse_policy(
        {
            "apiVersion": "taskqueue.dev/v1alpha1",
            "kind": "TaskQueuePolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


DEFAULT = Tenancy()


def test_the_default_policy_admits_a_namespace_using_its_own_queues_on_aws():
    assert DEFAULT.problems(build(resource())) == []


@pytest.mark.parametrize(
    ("spec", "sqs", "rule"),
    [
        # Finding 1: another team's prefix, adoption.
        ({}, {"queuePrefix": "teamb-"}, "spec.sqs.queuePrefix 'teamb-' is not allowed"),
        ({"adoptExistingQueues": True}, {}, "spec.adoptExistingQueues is not allowed"),
        # Finding 2: an endpoint of the tenant's choice.
        ({}, {"endpoint": "http://127.0.0.1:9/x"}, "spec.sqs.endpoint 'http://127.0.0.1:9/x'"),
        # Finding 3: a Secret, a ServiceAccount the namespace was not given.
        ({}, {"credentialsSecret": "platform-aws"}, "credentialsSecret 'platform-aws'"),
        ({"serviceAccountName": "admin"}, {}, "spec.serviceAccountName 'admin' is not allowed"),
    ],
)
def test_the_default_policy_refuses_each_finding_naming_the_field(spec, sqs, rule):
    base, namespace = resource(**sqs)
    (problem,) = DEFAULT.problems(build((base, namespace), **spec))
    assert problem.startswith(
        "the default policy (no TaskQueuePolicy selects namespace 'team-a'): "
    ), problem
    assert rule in problem


def test_namespace_prefixes_never_overlap_across_namespaces():
    """With `-` as separator, namespace `team` would own `team-a-...`; `_` cannot be in a
    namespace name, so no namespace's allowed names begin another's."""
    squatter = build(resource("team", queuePrefix="team_a_"))
    assert DEFAULT.problems(squatter) == []  # its own names...
    victim = build(resource("team-a"))
    assert not victim.spec.sqs.queue_prefix.startswith(squatter.spec.sqs.queue_prefix)
    assert DEFAULT.problems(build(resource("team", queuePrefix="team-a_")))


def test_endpoints_compare_as_queue_identities():
    tenancy = Tenancy(default=PolicyRules(endpoints=["https://sqs.internal:9324"]))
    allowed = [
        "https://sqs.internal:9324",
        "https://SQS.internal:9324/",
        "https://sqs.internal:9324",
    ]
    for url in allowed:
        assert tenancy.problems(build(resource(endpoint=url))) == [], url
    look_alikes = [
        "https://sqs.internal:9325",
        "http://sqs.internal:9324",
        "https://sqs.internal:9324/other",
        "https://sqs.internal:9324@127.0.0.1:9324",
        "https://sqs.internal.evil:9324",
    ]
    for url in look_alikes:
        assert tenancy.problems(build(resource(endpoint=url))), url
    # AWS's own endpoint is not the listed URL, unless `aws` is listed.
    assert tenancy.problems(build(resource()))


def test_aws_stands_for_every_spelling_of_aws_sqs_and_default_for_the_operators_endpoint():
    aws = build(resource(endpoint="https://sqs.eu-west-1.amazonaws.com/"))
    assert DEFAULT.problems(aws) == []
    local = build(resource(endpoint="http://elasticmq:9324"))
    assert DEFAULT.problems(local)
    assert Tenancy(default_endpoint="http://elasticmq:9324/").problems(local) == []


def test_several_policies_must_all_allow():
    loose = policy("loose", namespaces=["team-a"], queuePrefixes=["*"], images=["*"])
    strict = policy(
        "strict",
        namespaceSelector={"matchLabels": {"tier": "tenant"}},
        images=["registry.example.com/{namespace}/*"],
    )
    tenancy = Tenancy(policies=[loose, strict], namespace_labels={"team-a": {"tier": "tenant"}})
    assert tenancy.problems(build(resource())) == []
    problems = tenancy.problems(build(resource(), image="docker.io/evil/app:1"))
    assert problems == [
        "TaskQueuePolicy 'strict': spec.image 'docker.io/evil/app:1' is not allowed: it must "
        "match 'registry.example.com/team-a/*'"
    ]
    # Another namespace is selected by neither: the default policy applies there.
    other = build(resource("team-b"))
    assert Tenancy(policies=[loose, strict]).problems(other) == []


def test_images_match_with_the_registry_spelt_out():
    tenancy = Tenancy(default=PolicyRules(images=["docker.io/library/*"]))
    assert tenancy.problems(build(resource(), image="python:3.12")) == []
    assert tenancy.problems(build(resource(), image="ghcr.io/library/python:3.12"))


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {"a": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_namespace_selectors_match_as_kubernetes_does(selector, labels, selected):
    assert policy("p", namespaceSelector=selector).selects("ns", labels) is selected


def test_each_rule_can_be_opened_by_a_policy():
    rules = PolicyRules(
        queuePrefixes=["shared-"],
        endpoints=["http://127.0.0.1:9"],
        allowAdoption=True,
        credentialsSecrets=["platform-aws"],
        serviceAccounts=["admin"],
    )
    assert (
        Tenancy(default=rules).problems(
            build(
                resource(
                    queuePrefix="shared-x-",
                    endpoint="http://127.0.0.1:9",
                    credentialsSecret="platform-aws",
                ),
                adoptExistingQueues=True,
                serviceAccountName="admin",
            )
        )
        == []
    )


def test_deletion_operator_identity_and_regions_can_be_closed():
    rules = PolicyRules(allowDeletion=False, operatorCredentials="Forbidden", regions=["eu-west-2"])
    problems = Tenancy(default=rules).problems(build(resource(), deletionPolicy="Delete"))
    assert [p.split(": ", 1)[1].split(" ")[0] for p in problems] == [
        "spec.sqs.region",
        "spec.deletionPolicy",
        "spec.sqs.credentialsSecret",
    ]


def test_a_broken_policy_closes_the_gate():
    tenancy = Tenancy(broken=["'p': spec.images: Input should be a valid list"])
    (problem,) = tenancy.problems(build(resource()))
    assert problem.startswith("TaskQueuePolicy 'p' cannot be read, so no TaskQueue is admitted")


def test_a_policy_must_select_something_and_rejects_unknown_fields():
    with pytest.raises(pydantic.ValidationError):
        PolicyRules.model_validate({"imagess": ["*"]})
    with pytest.raises(ValueError, match=r"TaskQueuePolicy p: spec\.queuePrefixes\.0"):
        policy("p", namespaces=["a"], queuePrefixes=["bad prefix"])


def test_the_default_policy_comes_from_the_environment_as_json():
    settings = from_environment({"TASKQUEUE_DEFAULT_POLICY": '{"images": ["r.example/*"]}'})
    assert settings.default_policy.images == ["r.example/*"]
    assert settings.default_policy.queue_prefixes == ["{namespace}_"]
    for raw in ("not json", '{"imagez": []}', "[1]"):
        with pytest.raises(pydantic.ValidationError) as caught:
            from_environment({"TASKQUEUE_DEFAULT_POLICY": raw})
        assert describe(caught.value)[0].startswith("TASKQUEUE_DEFAULT_POLICY"), raw


def test_tenancy_from_documents_takes_policies_and_namespace_labels():
    tenancy = tenancy_from_documents(
        [
            {
                "apiVersion": "taskqueue.dev/v1alpha1",
                "kind": "TaskQueuePolicy",
                "metadata": {"name": "by-name"},
                "spec": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}
                },
            },
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
        ],
        default=parse_rules({"images": ["nothing"]}),
    )
    assert [a.by for a in tenancy.applied("x")] == ["TaskQueuePolicy 'by-name'"]
    assert tenancy.applied("y")[0].rules.images == ["nothing"]


# -- kube-taskqueue validate --policy (what GitOps CI runs before a merge) ------------------


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kube_taskqueue.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=60,
        check=False,
    )


def test_validate_with_a_policy_file_refuses_what_the_webhook_refuses(tmp_path: Path):
    spec, _ = resource()
    manifest = {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueue",
        "metadata": {"name": "app", "namespace": "team-a"},
        "spec": {**spec, "image": "docker.io/evil/app:1"},
    }
    (tmp_path / "app.yaml").write_text(yaml.safe_dump(manifest))
    (tmp_path / "policy.yaml").write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "taskqueue.dev/v1alpha1",
                    "kind": "TaskQueuePolicy",
                    "metadata": {"name": "tenants"},
                    "spec": {
                        "namespaceSelector": {"matchLabels": {"tier": "tenant"}},
                        "images": ["registry.example.com/{namespace}/*"],
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": "team-a", "labels": {"tier": "tenant"}},
                },
            ]
        )
    )
    plain = run("validate", str(tmp_path / "app.yaml"))
    assert plain.returncode == 0, plain.stderr  # no policy given: the resource rules only
    checked = run("validate", str(tmp_path / "app.yaml"), "--policy", str(tmp_path / "policy.yaml"))
    assert checked.returncode == 1
    assert (
        f"{tmp_path / 'app.yaml'}: team-a/app: TaskQueuePolicy 'tenants': spec.image "
        "'docker.io/evil/app:1' is not allowed: it must match 'registry.example.com/team-a/*'"
    ) in checked.stderr
    (tmp_path / "default.json").write_text(json.dumps({"images": ["docker.io/evil/*"]}))
    unselected = run(
        "validate",
        str(tmp_path / "app.yaml"),
        "--default-policy",
        str(tmp_path / "default.json"),
    )
    assert unselected.returncode == 0, unselected.stderr


def test_a_bad_default_policy_file_is_one_line(tmp_path: Path):
    spec, _ = resource()
    (tmp_path / "app.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "taskqueue.dev/v1alpha1",
                "kind": "TaskQueue",
                "metadata": {"name": "app", "namespace": "team-a"},
                "spec": spec,
            }
        )
    )
    (tmp_path / "default.yaml").write_text("imagez: []\n")
    result = run(
        "validate", str(tmp_path / "app.yaml"), "--default-policy", str(tmp_path / "default.yaml")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kube-taskqueue: error: {tmp_path / 'default.yaml'}: not a default policy: imagez: "
        "Extra inputs are not permitted"
    ]


def test_the_example_policy_admits_the_example_which_the_default_policy_refuses(tmp_path: Path):
    examples = Path(__file__).parents[2] / "examples" / "manifests"
    with_policy = run(
        "validate",
        str(examples / "accounts.yaml"),
        "--policy",
        str(examples / "policy.yaml"),
    )
    assert with_policy.returncode == 0, with_policy.stderr
    (tmp_path / "default.json").write_text("{}")
    without = run(
        "validate",
        str(examples / "accounts.yaml"),
        "--default-policy",
        str(tmp_path / "default.json"),
    )
    assert without.returncode == 1
    for field in ("queuePrefix", "endpoint", "credentialsSecret", "serviceAccountName"):
        assert field in without.stderr
