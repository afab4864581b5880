"""Least-privilege IAM policies (`kube-taskqueue iam`): the statements rendered from the
TaskQueuePolicies and TaskQueues, the command as a user runs it, and IAM itself (moto's server)
accepting every document and enforcing the processor's."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import yaml
from harness import free_port
from kube_taskqueue.sqs import SqsClient
from kube_taskqueue_operator.resource import iam
from kube_taskqueue_operator.resource.policy import (
    PolicyRules,
    Tenancy,
    tenancy_from_documents,
)
from kube_taskqueue_operator.resource.validation import parse

TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
ROOT = Path(__file__).parents[2]
OPERATOR_SOURCES = [
    ROOT / "operator" / "kube_taskqueue_operator" / "queues.py",
    ROOT / "operator" / "kube_taskqueue_operator" / "reconcile.py",
]
#: moto's account.
ACCOUNT = "123456789012"
MANAGE = {
    "sqs:CreateQueue",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ListQueueTags",
    "sqs:SetQueueAttributes",
    "sqs:TagQueue",
    "sqs:UntagQueue",
}


def policy(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "taskqueue.dev/v1alpha1",
        "kind": "TaskQueuePolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def taskqueue(name: str = "app", ns: str = "team-a", **spec: Any) -> Any:
    body: dict[str, Any] = {
        "image": "registry.example.com/app:1",
        "app": "app.tasks:provider",
        "sqs": {"region": "eu-west-1", "queuePrefix": f"{ns}_"},
        "queues": [
            {"name": "fast", "deadLetter": {}},
            {"name": "slow"},
            {"name": "cron.fifo"},
        ],
        "tasks": [
            {"name": "a", "queue": "fast"},
            {"name": "b", "queue": "slow"},
            {"name": "tick", "queue": "cron.fifo", "schedule": "* * * * *"},
        ],
        "processors": [
            {"name": "web", "tasks": ["a"]},
            {"name": "batch", "tasks": ["b", "tick"]},
        ],
    }
    body.update(spec)
    return parse(
        {
            "apiVersion": "taskqueue.dev/v1alpha1",
            "kind": "TaskQueue",
            "metadata": {"name": name, "namespace": ns},
            "spec": body,
        }
    )


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert document["Version"] == "2012-10-17"
    return {s["Sid"]: s for s in document["Statement"]}


# -- the actions: exactly the calls the code makes --------------------------------------------


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _iam_action(call: str) -> str:
    # The batch calls are authorised by their non-batch actions.
    return "sqs:" + _camel(call).removesuffix("Batch")


def test_operator_actions_are_the_sqs_calls_of_the_operator():
    calls = {
        match
        for source in OPERATOR_SOURCES
        for match in re.findall(r"_client\.([a-z_]+)\(", source.read_text())
    }
    assert {_iam_action(call) for call in calls} == {*iam.OPERATOR_ACTIONS, *iam.DELETE_ACTIONS}


def test_processor_actions_are_the_calls_of_its_sqs_client():
    calls = {
        name for name, _ in inspect.getmembers(SqsClient, inspect.isfunction) if name[0] != "_"
    }
    assert {_iam_action(call) for call in calls} == {*iam.POLL_ACTIONS, *iam.SEND_ACTIONS}
    assert set(iam.SCHEDULE_ACTIONS) <= set(iam.SEND_ACTIONS)


# -- the operator's policy ------------------------------------------------------------------


def test_operator_policy_grants_each_policy_its_prefixes():
    tenancy = tenancy_from_documents(
        [
            policy("team-b", namespaces=["team-b"], queuePrefixes=["{namespace}-", "shared-*-"]),
            policy(
                "teams",
                namespaces=["team-a", "team-c"],
                queuePrefixes=["{namespace}_"],
                allowDeletion=False,
            ),
            policy(
                "labelled",
                namespaceSelector={"matchLabels": {"tier": "apps"}},
                queuePrefixes=["apps-{namespace}-"],
            ),
        ]
    )
    document = iam.operator_policy(tenancy, account=ACCOUNT, region="eu-west-1")
    found = statements(document)
    # In policy name order, the default policy last.
    assert list(found) == [
        "TaskQueuePolicyLabelled",
        "TaskQueuePolicyTeamB",
        "TaskQueuePolicyTeams",
        "DefaultPolicy",
    ]
    arn = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:"
    # A selector's namespaces are unknown to IAM: any.
    assert found["TaskQueuePolicyLabelled"]["Resource"] == [f"{arn}apps-*-*"]
    assert found["TaskQueuePolicyTeamB"]["Resource"] == [f"{arn}shared-*-*", f"{arn}team-b-*"]
    assert found["TaskQueuePolicyTeams"]["Resource"] == [f"{arn}team-a_*", f"{arn}team-c_*"]
    assert found["DefaultPolicy"]["Resource"] == [f"{arn}*_*"]
    assert set(found["TaskQueuePolicyTeamB"]["Action"]) == {*MANAGE, "sqs:DeleteQueue"}
    # allowDeletion: false, so the operator never deletes there.
    assert set(found["TaskQueuePolicyTeams"]["Action"]) == MANAGE
    assert all(s["Effect"] == "Allow" for s in document["Statement"])
    # Deterministic: the same input renders the same text.
    again = iam.operator_policy(tenancy, account=ACCOUNT, region="eu-west-1")
    assert json.dumps(again) == json.dumps(document)


def test_forbidden_operator_credentials_grant_nothing():
    tenancy = tenancy_from_documents(
        [
            policy("own-keys", namespaces=["team-a"], operatorCredentials="Forbidden"),
            # team-a is also listed here, but own-keys forbids the operator's identity there.
            policy("both", namespaces=["team-a", "team-b"], queuePrefixes=["{namespace}-"]),
            # Selects team-c by its label (from the Namespace document).
            policy(
                "locked",
                namespaceSelector={"matchLabels": {"locked": "yes"}},
                operatorCredentials="Forbidden",
            ),
            policy("named", namespaces=["team-c", "team-d"]),
            namespace("team-c", locked="yes"),
        ]
    )
    found = statements(iam.operator_policy(tenancy, include_default=False))
    assert list(found) == ["TaskQueuePolicyBoth", "TaskQueuePolicyNamed"]
    assert found["TaskQueuePolicyBoth"]["Resource"] == ["arn:aws:sqs:*:*:team-b-*"]
    assert found["TaskQueuePolicyNamed"]["Resource"] == ["arn:aws:sqs:*:*:team-d_*"]


def test_without_default_policy_and_with_a_forbidding_default():
    named = policy("named", namespaces=["team-a"])
    only = statements(iam.operator_policy(tenancy_from_documents([named]), include_default=False))
    assert list(only) == ["TaskQueuePolicyNamed"]
    forbidding = tenancy_from_documents(
        [named], default=PolicyRules.model_validate({"operatorCredentials": "Forbidden"})
    )
    assert list(statements(iam.operator_policy(forbidding))) == ["TaskQueuePolicyNamed"]
    with pytest.raises(iam.NothingToGrant):
        iam.operator_policy(Tenancy(), include_default=False)


def test_regions_and_partitions_of_the_operator_policy():
    tenancy = tenancy_from_documents(
        [policy("eu", namespaces=["team-a"], regions=["eu-west-1", "eu-central-1"])]
    )
    found = statements(iam.operator_policy(tenancy, include_default=False))
    assert found["TaskQueuePolicyEu"]["Resource"] == [
        "arn:aws:sqs:eu-central-1:*:team-a_*",
        "arn:aws:sqs:eu-west-1:*:team-a_*",
    ]
    found = statements(
        iam.operator_policy(tenancy, region="eu-west-1", partition="aws-cn", include_default=False)
    )
    assert found["TaskQueuePolicyEu"]["Resource"] == ["arn:aws-cn:sqs:eu-west-1:*:team-a_*"]
    # A region the policy does not allow: nothing there.
    with pytest.raises(iam.NothingToGrant):
        iam.operator_policy(tenancy, region="us-east-1", include_default=False)
    default = statements(iam.operator_policy(Tenancy(), region="cn-north-1"))
    assert default["DefaultPolicy"]["Resource"] == ["arn:aws-cn:sqs:cn-north-1:*:*_*"]


def test_sids_are_alphanumeric_and_unique():
    tenancy = tenancy_from_documents(
        [policy("team-a", namespaces=["team-a"]), policy("team.a", namespaces=["team-b"])]
    )
    sids = list(statements(iam.operator_policy(tenancy)))
    assert sids == ["TaskQueuePolicyTeamA", "TaskQueuePolicyTeamA2", "DefaultPolicy"]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)


def test_arn_parts_are_checked():
    iam.check_arn_parts(account=ACCOUNT, region="eu-west-1", partition="aws-us-gov")
    iam.check_arn_parts(account="*", region="*", partition=None)
    for bad in ({"account": "12345"}, {"region": "EU"}, {"partition": "azure"}):
        arguments = {"account": "*", "region": "*", "partition": None, **bad}
        with pytest.raises(iam.InvalidArn):
            iam.check_arn_parts(**arguments)


# -- the processors' policies ---------------------------------------------------------------


def test_processor_polls_its_queues_and_sends_to_its_taskqueues():
    resource = taskqueue()
    policies = iam.processor_policies([resource], account=ACCOUNT)
    assert list(policies) == ["team-a/app/batch", "team-a/app/web"]
    arn = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:team-a_"
    web = statements(policies["team-a/app/web"])
    assert list(web) == ["PollQueues", "SendToTaskQueueQueues"]
    assert web["PollQueues"]["Resource"] == [f"{arn}fast"]
    assert set(web["PollQueues"]["Action"]) == {
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    }
    # Every queue of its TaskQueue (tasks enqueue other tasks), and no dead-letter queue:
    # SQS moves dead letters itself.
    assert web["SendToTaskQueueQueues"]["Resource"] == [
        f"{arn}cron.fifo",
        f"{arn}fast",
        f"{arn}slow",
    ]
    assert web["SendToTaskQueueQueues"]["Action"] == ["sqs:GetQueueUrl", "sqs:SendMessage"]
    batch = statements(policies["team-a/app/batch"])
    assert batch["PollQueues"]["Resource"] == [f"{arn}cron.fifo", f"{arn}slow"]


def test_scheduled_tasks_send_within_their_processors_policy():
    resource = taskqueue()
    scheduler = iam.scheduler_policy(resource)
    assert scheduler is not None
    (only,) = scheduler["Statement"]
    assert only["Sid"] == "EnqueueScheduledTasks"
    assert only["Resource"] == ["arn:aws:sqs:eu-west-1:*:team-a_cron.fifo"]
    batch = statements(iam.processor_policy(resource, resource.spec.processors[1]))
    send = batch["SendToTaskQueueQueues"]
    assert set(only["Action"]) <= set(send["Action"])
    assert set(only["Resource"]) <= set(send["Resource"])
    unscheduled = taskqueue(
        tasks=[{"name": "a", "queue": "fast"}, {"name": "b", "queue": "slow"}],
        processors=[{"name": "web", "tasks": ["a", "b"]}],
    )
    assert iam.scheduler_policy(unscheduled) is None


def test_identity_policies_merge_what_runs_as_one_identity():
    first = taskqueue("one", serviceAccountName="workers")
    second = taskqueue(
        "two",
        serviceAccountName="workers",
        sqs={"region": "eu-west-1", "queuePrefix": "team-a_two-"},
    )
    keyed = taskqueue("three", sqs={"queuePrefix": "team-a_three-", "credentialsSecret": "keys"})
    plain = taskqueue("four", sqs={"region": "eu-west-1", "queuePrefix": "team-a_four-"})
    policies = iam.identity_policies([first, second, keyed, plain])
    assert list(policies) == [
        "team-a/secret/keys",
        "team-a/serviceaccount/default",
        "team-a/serviceaccount/workers",
    ]
    workers = statements(policies["team-a/serviceaccount/workers"])
    # The scheduled task's statement has the send statement's actions: merged into it.
    assert list(workers) == ["PollQueues", "SendToTaskQueueQueues"]
    names = [arn.rsplit(":", 1)[1] for arn in workers["PollQueues"]["Resource"]]
    assert names == sorted(
        f"team-a_{p}{q}" for p in ("", "two-") for q in ("cron.fifo", "fast", "slow")
    )
    assert workers["SendToTaskQueueQueues"]["Resource"] == workers["PollQueues"]["Resource"]
    # No region: whichever the pod's boto3 finds.
    keys = statements(policies["team-a/secret/keys"])
    assert list(keys) == ["ManageQueues", "PollQueues", "SendToTaskQueueQueues"]
    assert keys["PollQueues"]["Resource"][0].startswith("arn:aws:sqs:*:*:team-a_three-")


def test_a_credentials_secret_also_manages_its_taskqueues_queues():
    keys = {"region": "eu-west-1", "credentialsSecret": "keys"}
    retained = taskqueue("kept", sqs={**keys, "queuePrefix": "team-a_kept-"})
    deleted = taskqueue(
        "gone", deletionPolicy="Delete", sqs={**keys, "queuePrefix": "team-a_gone-"}
    )
    (only,) = iam.management_policy(retained)["Statement"]
    assert only["Sid"] == "ManageQueues"
    assert set(only["Action"]) == MANAGE
    # Every queue and dead-letter queue of the spec, by exact name.
    assert [arn.rsplit(":", 1)[1] for arn in only["Resource"]] == [
        "team-a_kept-cron.fifo",
        "team-a_kept-fast",
        "team-a_kept-fast-dlq",
        "team-a_kept-slow",
    ]
    (delete,) = iam.management_policy(deleted)["Statement"]
    assert set(delete["Action"]) == {*MANAGE, "sqs:DeleteQueue"}
    (merged,) = iam.identity_policies([retained, deleted]).values()
    sids = [s["Sid"] for s in merged["Statement"]]
    # Retain and Delete differ in actions: two statements, Sids kept unique.
    assert sids == ["ManageQueues", "ManageQueues2", "PollQueues", "SendToTaskQueueQueues"]


def test_partition_follows_the_region():
    resource = taskqueue(sqs={"region": "cn-northwest-1", "queuePrefix": "team-a_"})
    web = statements(iam.processor_policy(resource, resource.spec.processors[0]))
    assert web["PollQueues"]["Resource"] == ["arn:aws-cn:sqs:cn-northwest-1:*:team-a_fast"]


# -- the command ----------------------------------------------------------------------------


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKQUEUE), "iam", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
    )


def write(path: Path, *documents: Any) -> Path:
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_iam_operator_prints_the_policy(tmp_path):
    policies = write(
        tmp_path / "policies.yaml",
        policy("teams", namespaces=["team-b", "team-a"]),
        policy(
            "locked",
            namespaceSelector={"matchLabels": {"locked": "yes"}},
            operatorCredentials="Forbidden",
        ),
    )
    result = run(
        "operator", "--policy", str(policies), "--without-default-policy", "--account", ACCOUNT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == iam.document(
        [
            iam.statement(
                "TaskQueuePolicyTeams",
                [*MANAGE, "sqs:DeleteQueue"],
                [f"arn:aws:sqs:*:{ACCOUNT}:team-a_*", f"arn:aws:sqs:*:{ACCOUNT}:team-b_*"],
            )
        ]
    )
    default = tmp_path / "default.yaml"
    default.write_text("queuePrefixes: ['{namespace}-']\nallowDeletion: false\n")
    result = run("operator", "--default-policy", str(default), "--region", "eu-west-1")
    assert result.returncode == 0, result.stderr
    (only,) = json.loads(result.stdout)["Statement"]
    assert only["Sid"] == "DefaultPolicy"
    assert only["Resource"] == ["arn:aws:sqs:eu-west-1:*:*-*"]
    assert "sqs:DeleteQueue" not in only["Action"]


def test_iam_operator_with_nothing_to_grant_says_so(tmp_path):
    default = tmp_path / "default.yaml"
    default.write_text("operatorCredentials: Forbidden\n")
    result = run("operator", "--default-policy", str(default))
    assert result.returncode == 0
    assert result.stdout == ""
    assert "needs no SQS permissions of its own" in result.stderr


def test_iam_processors_prints_one_object(tmp_path):
    example = ROOT / "examples" / "manifests" / "accounts.yaml"
    result = run("processors", "-f", str(example), "--account", ACCOUNT)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert list(printed) == ["billing/accounts/examples", "billing/accounts/main"]
    main = statements(printed["billing/accounts/main"])
    assert main["PollQueues"]["Resource"] == [
        f"arn:aws:sqs:eu-west-1:{ACCOUNT}:accounts-dev-shared"
    ]
    by_identity = run("processors", "-f", "-", "--by-identity", stdin=example.read_text())
    assert by_identity.returncode == 0, by_identity.stderr
    assert list(json.loads(by_identity.stdout)) == ["billing/secret/sqs-credentials"]


def test_iam_processors_takes_the_render_defaults(tmp_path):
    body = yaml.safe_load((ROOT / "examples" / "manifests" / "accounts.yaml").read_text())
    del body["spec"]["sqs"]["region"]
    del body["spec"]["sqs"]["queuePrefix"]
    path = write(tmp_path / "tq.yaml", body)
    defaults = ["--default-region", "us-gov-west-1", "--default-queue-prefix", "prod-"]
    result = run("processors", "-f", str(path), *defaults)
    assert result.returncode == 0, result.stderr
    main = statements(json.loads(result.stdout)["billing/accounts/main"])
    assert main["PollQueues"]["Resource"] == ["arn:aws-us-gov:sqs:us-gov-west-1:*:prod-shared"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["operator", "--account", "42"], "account '42' is not an AWS account id"),
        (["operator", "--region", "Europe"], "region 'Europe' is not an AWS region"),
        (["processors", "-f", "{example}", "--partition", "gcp"], "partition 'gcp'"),
        (["operator", "--policy", "{missing}"], "missing.yaml"),
        (["operator", "--policy", "{bad_policy}"], "TaskQueuePolicy bad"),
        (["operator", "--default-policy", "{bad_default}"], "not a default policy"),
        (["processors", "-f", "{empty}"], "no TaskQueue found"),
    ],
)
def test_iam_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    paths = {
        "example": str(ROOT / "examples" / "manifests" / "accounts.yaml"),
        "missing": str(tmp_path / "missing.yaml"),
        "bad_policy": str(write(tmp_path / "p.yaml", policy("bad", namespaces="team-a"))),
        "bad_default": str(write(tmp_path / "d.yaml", {"queuePrefixes": []})),
        "empty": str(write(tmp_path / "e.yaml", {"apiVersion": "v1", "kind": "ConfigMap"})),
    }
    result = run(*(arg.format(**paths) for arg in args))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("kube-taskqueue: error: ")
    assert message in line
    assert result.stdout == ""


def test_iam_processors_refuses_invalid_taskqueues(tmp_path):
    body = yaml.safe_load((ROOT / "examples" / "manifests" / "accounts.yaml").read_text())
    body["spec"]["processors"][0]["tasks"].append("nope:job")
    result = run("processors", "-f", str(write(tmp_path / "bad.yaml", body)))
    assert result.returncode == 1
    assert "nope:job" in result.stderr
    assert result.stdout == ""


# -- IAM itself (moto's server) -------------------------------------------------------------


def rendered_documents() -> dict[str, dict[str, Any]]:
    tenancy = tenancy_from_documents(
        [
            policy("teams", namespaces=["team-a", "team-b"], queuePrefixes=["{namespace}_"]),
            policy("labelled", namespaceSelector={}, queuePrefixes=["apps-{namespace}-", "x*y"]),
            policy("eu", namespaces=["team-c"], regions=["eu-west-1"], allowDeletion=False),
        ]
    )
    found = {"operator": iam.operator_policy(tenancy, account=ACCOUNT)}
    found["operator-cn"] = iam.operator_policy(tenancy, partition="aws-cn", region="cn-north-1")
    resources = [
        taskqueue(),
        taskqueue("keys", sqs={"queuePrefix": "k-", "credentialsSecret": "s"}),
        taskqueue(
            "gone", deletionPolicy="Delete", sqs={"queuePrefix": "g-", "credentialsSecret": "s"}
        ),
    ]
    found.update(iam.processor_policies(resources, account=ACCOUNT))
    found.update(iam.identity_policies(resources))
    scheduler = iam.scheduler_policy(resources[0])
    assert scheduler is not None
    found["scheduler"] = scheduler
    return found


def test_iam_accepts_every_rendered_document(sqs_endpoint):
    client = boto3.client("iam", endpoint_url=sqs_endpoint, region_name="us-east-1")
    run_id = uuid.uuid4().hex[:8]
    for index, (key, document) in enumerate(rendered_documents().items()):
        text = json.dumps(document)
        assert iam.size(document) <= iam.MAX_MANAGED_POLICY_CHARS, key
        created = client.create_policy(PolicyName=f"tq-{run_id}-{index}", PolicyDocument=text)
        assert created["Policy"]["Arn"], key
    # moto checks the grammar: a broken document is refused (so the check above means something).
    broken = iam.document([{"Sid": "not-alphanumeric", "Effect": "Allow", "Action": "sqs:X"}])
    with pytest.raises(botocore.exceptions.ClientError):
        client.create_policy(PolicyName=f"tq-{run_id}-broken", PolicyDocument=json.dumps(broken))


#: The requests the enforcement test makes before IAM is enforced: 3 CreateQueue, 1 SendMessage,
#: CreatePolicy, CreateUser, AttachUserPolicy, CreateAccessKey.
SETUP_REQUESTS = 8


@pytest.fixture
def enforcing_moto() -> Iterator[str]:
    """A moto server of this test's own that enforces IAM after SETUP_REQUESTS requests (the
    shared server's other tests sign with credentials no IAM user holds)."""
    port = free_port()
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                # moto's own API: not a request IAM counts.
                urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def denied(error: botocore.exceptions.ClientError, action: str) -> bool:
    # moto answers the JSON protocol's request with its XML error body, as the message.
    return (
        error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        and f"is not authorized to perform: {action}" in error.response["Error"]["Message"]
    )


def test_the_processor_policy_lets_it_receive_and_not_send_elsewhere(enforcing_moto):
    endpoint = enforcing_moto
    ours = taskqueue("ours", sqs={"region": "us-east-1", "queuePrefix": "team-a_ours-"})
    admin_sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    urls = {
        name: admin_sqs.create_queue(QueueName=name)["QueueUrl"]
        for name in ("team-a_ours-fast", "team-a_ours-slow", "b_fast")
    }
    admin_sqs.send_message(QueueUrl=urls["team-a_ours-fast"], MessageBody="hello")
    admin_iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    document = iam.processor_policy(ours, ours.spec.processors[0], account=ACCOUNT)
    arn = admin_iam.create_policy(PolicyName="web", PolicyDocument=json.dumps(document))
    admin_iam.create_user(UserName="web")
    admin_iam.attach_user_policy(UserName="web", PolicyArn=arn["Policy"]["Arn"])
    key = admin_iam.create_access_key(UserName="web")["AccessKey"]

    processor = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    received = processor.receive_message(QueueUrl=urls["team-a_ours-fast"], WaitTimeSeconds=0)
    assert [m["Body"] for m in received["Messages"]] == ["hello"]
    # Its own TaskQueue's other queue: it may send (tasks enqueue tasks), not receive.
    processor.send_message(QueueUrl=urls["team-a_ours-slow"], MessageBody="next")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        processor.receive_message(QueueUrl=urls["team-a_ours-slow"], WaitTimeSeconds=0)
    assert denied(refused.value, "sqs:ReceiveMessage")
    # Another TaskQueue's queue (b_ is team-b's): neither.
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        processor.send_message(QueueUrl=urls["b_fast"], MessageBody="intrusion")
    assert denied(refused.value, "sqs:SendMessage")
