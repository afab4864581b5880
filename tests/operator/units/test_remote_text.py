"""What an SQS endpoint answers reaches a TaskQueue's status and events only as a bounded,
printable summary: the tenant reads those, and the endpoint may be anything."""

from __future__ import annotations

import botocore.exceptions
from kube_taskqueue_operator.claims import Clash
from kube_taskqueue_operator.queues import REMOTE_TEXT_LIMIT, classify, remote_text
from kube_taskqueue_operator.resource.identity import normalise


def refusal(code: str, message: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}}, "CreateQueue"
    )


def test_a_long_reflected_answer_is_cut_and_made_printable():
    answer = "secret-from-metadata\x1b[2J\n" + "A" * 10_000
    error = classify(refusal("AccessDenied", answer), queue="q")
    text = str(error)
    assert "\x1b" not in text and "\n" not in text
    assert len(text) < REMOTE_TEXT_LIMIT + 80
    assert text.endswith("…")


def test_an_error_code_that_is_not_a_code_is_not_copied():
    error = classify(refusal("<html><body>" + "x" * 100, "m"), queue="q")
    assert error.reason == "SQSError"
    assert "<html>" not in str(error)


def test_plain_text_stays_as_it_was():
    assert remote_text("The specified queue does not exist.") == (
        "The specified queue does not exist."
    )


def test_a_clash_names_the_owner_only_within_the_askers_namespace():
    queue = normalise(region="eu-west-1", endpoint=None, name="shared")
    same = Clash(queue=queue, owner="team-a/owner", asking="team-a/new")
    other = Clash(queue=queue, owner="team-b/secret-app", asking="team-a/new")
    assert "TaskQueue team-a/owner" in same.message
    assert "team-b" not in other.message and "secret-app" not in other.message
    assert "a TaskQueue in another namespace" in other.message
