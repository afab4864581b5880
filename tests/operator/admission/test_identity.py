"""Queue identities: the spellings of one SQS service compare equal (no API server needed)."""

from __future__ import annotations

import pytest
from kube_taskqueue_operator.claims import ClaimIndex
from kube_taskqueue_operator.handlers import admission_problems
from kube_taskqueue_operator.policies import PolicyIndex
from kube_taskqueue_operator.reconcile import Reconciler, SqsClients
from kube_taskqueue_operator.resource.defaults import SqsDefaults
from kube_taskqueue_operator.resource.identity import normalise
from kube_taskqueue_operator.resource.policy import parse_rules
from operator_harness import PERMISSIVE_POLICY


@pytest.mark.parametrize(
    "endpoint",
    [
        None,
        "",
        "https://sqs.eu-west-1.amazonaws.com",
        "https://sqs.eu-west-1.amazonaws.com/",
        "https://SQS.eu-west-1.amazonaws.com:443/",
        "http://sqs.eu-west-1.amazonaws.com",
        "sqs.eu-west-1.amazonaws.com",
        "https://eu-west-1.queue.amazonaws.com",
    ],
)
def test_every_spelling_of_aws_sqs_is_one_service(endpoint):
    assert normalise(region="eu-west-1", endpoint=endpoint, name="q") == normalise(
        region="eu-west-1", endpoint=None, name="q"
    )


def test_the_region_in_an_aws_host_is_where_the_queue_is():
    spelt = normalise(region="us-east-1", endpoint="https://sqs.eu-west-1.amazonaws.com", name="q")
    assert spelt == normalise(region="eu-west-1", endpoint=None, name="q")


def test_no_region_is_boto3s_default():
    assert normalise(region=None, endpoint=None, name="q").region == "us-east-1"


@pytest.mark.parametrize(
    "alias",
    ["http://127.0.0.1:4566/", "HTTP://127.0.0.1:4566", "http://127.0.0.1:4566//"],
)
def test_other_endpoints_ignore_case_and_trailing_slashes(alias):
    assert normalise(region="r", endpoint=alias, name="q") == normalise(
        region="r", endpoint="http://127.0.0.1:4566", name="q"
    )


def test_default_ports_are_dropped_and_others_kept():
    assert normalise(region="r", endpoint="https://sqs.example.net:443", name="q") == normalise(
        region="r", endpoint="https://sqs.example.net", name="q"
    )
    assert normalise(region="r", endpoint="http://sqs.example.net:8771", name="q") != normalise(
        region="r", endpoint="http://sqs.example.net", name="q"
    )


def test_different_services_regions_and_names_differ():
    base = normalise(region="r", endpoint="http://a:1", name="q")
    assert base != normalise(region="r", endpoint="http://b:1", name="q")
    assert base != normalise(region="s", endpoint="http://a:1", name="q")
    assert base != normalise(region="r", endpoint="http://a:1", name="p")
    assert base != normalise(region="r", endpoint="http://a:1/path", name="q")


# -- the claim index and the admission rule ------------------------------------------------


def _reconciler() -> Reconciler:
    return Reconciler(
        workloads=None,  # type: ignore[arg-type]  # resolve() touches neither
        clients=SqsClients(call_timeout=1),
        defaults=SqsDefaults(region="us-east-1", endpoint=None, queue_prefix=""),
        policies=PolicyIndex(default=parse_rules(PERMISSIVE_POLICY), loaded=True),
    )


def _body(name: str, *, created: str | None, uid: str, endpoint: str | None = None) -> dict:
    metadata: dict = {"name": name, "namespace": "ns"}
    if created:
        metadata.update(creationTimestamp=created, uid=uid)
    sqs: dict = {"region": "us-east-1", "queuePrefix": "p-"}
    if endpoint is not None:
        sqs["endpoint"] = endpoint
    return {
        "metadata": metadata,
        "spec": {
            "image": "img:1",
            "app": "a:provider",
            "sqs": sqs,
            "queues": [{"name": "work"}],
            "tasks": [{"name": "t:job", "queue": "work"}],
            "processors": [{"name": "main", "tasks": ["t:job"]}],
        },
    }


def _index(*bodies: dict) -> ClaimIndex:
    index = ClaimIndex(resolve=_reconciler().resolve)
    index.replace(None, bodies)
    return index


def test_admission_is_refused_until_the_index_is_complete():
    index = ClaimIndex(resolve=_reconciler().resolve)
    problems = admission_problems(
        _reconciler(), index, body=_body("a", created=None, uid=""), old=None, operation="CREATE"
    )
    assert problems and "still loading" in problems[0]
    index.replace(None, [])
    assert (
        admission_problems(
            _reconciler(),
            index,
            body=_body("a", created=None, uid=""),
            old=None,
            operation="CREATE",
        )
        == []
    )


def test_the_first_created_owns_the_queue_and_ties_go_to_the_lower_uid():
    older = _body("older", created="2026-01-01T00:00:00Z", uid="b")
    tie = _body("tie", created="2026-01-01T00:00:00Z", uid="a")
    newer = _body("newer", created="2026-01-01T00:00:01Z", uid="0")
    index = _index(older, tie, newer)
    assert [p["metadata"]["name"] for p in index.senior_peers(tie)] == []
    assert [p["metadata"]["name"] for p in index.senior_peers(older)] == ["tie"]
    # The owner alone (the most senior), not every claimant before it.
    assert [p["metadata"]["name"] for p in index.senior_peers(newer)] == ["tie"]


def test_an_alias_peer_is_given_the_resources_own_spelling():
    owner = _body("owner", created="2026-01-01T00:00:00Z", uid="a", endpoint="http://h:1/")
    junior = _body("junior", created="2026-01-01T00:00:01Z", uid="b", endpoint="http://h:1")
    (peer,) = _index(owner, junior).senior_peers(junior)
    assert peer["spec"]["sqs"]["endpoint"] == "http://h:1"
    assert peer["spec"]["sqs"]["queuePrefix"] == "p-"


def test_a_create_clashing_with_any_stored_claimant_is_refused_naming_it():
    index = _index(_body("owner", created="2026-01-01T00:00:00Z", uid="z"))
    problems = admission_problems(
        _reconciler(),
        index,
        body=_body("new", created=None, uid="", endpoint="https://sqs.us-east-1.amazonaws.com/"),
        old=None,
        operation="CREATE",
    )
    assert len(problems) == 1 and "is also declared by TaskQueue ns/owner" in problems[0]


def test_the_owner_may_change_its_spec_and_anyone_may_change_labels_or_be_deleted():
    owner = _body("owner", created="2026-01-01T00:00:00Z", uid="z")
    junior = _body("junior", created="2026-01-01T00:00:05Z", uid="a")
    index = _index(owner, junior)
    edited = _body("owner", created="2026-01-01T00:00:00Z", uid="z")
    edited["spec"]["queues"][0]["pollInterval"] = 5
    assert (
        admission_problems(_reconciler(), index, body=edited, old=owner, operation="UPDATE") == []
    )
    labelled = _body("junior", created="2026-01-01T00:00:05Z", uid="a")
    labelled["metadata"]["labels"] = {"x": "y"}
    assert (
        admission_problems(_reconciler(), index, body=labelled, old=junior, operation="UPDATE")
        == []
    )
    deleting = _body("junior", created="2026-01-01T00:00:05Z", uid="a")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    deleting["spec"]["queues"][0]["pollInterval"] = 7
    assert (
        admission_problems(_reconciler(), index, body=deleting, old=junior, operation="UPDATE")
        == []
    )
    changed = _body("junior", created="2026-01-01T00:00:05Z", uid="a")
    changed["spec"]["queues"][0]["pollInterval"] = 7
    problems = admission_problems(
        _reconciler(), index, body=changed, old=junior, operation="UPDATE"
    )
    assert problems and "ns/owner" in problems[0]
