"""Semantic comparison of SQS attributes, so a no-op reconcile sets nothing."""

from __future__ import annotations

import json

import pytest
from kube_taskqueue_operator.queues import same_attribute


@pytest.mark.parametrize(
    ("name", "current", "desired", "same"),
    [
        ("VisibilityTimeout", "30", "30", True),
        ("VisibilityTimeout", "030", "30", True),
        ("VisibilityTimeout", "30", "31", False),
        ("ContentBasedDeduplication", "True", "true", True),
        (
            "RedrivePolicy",
            json.dumps({"deadLetterTargetArn": "a", "maxReceiveCount": "5"}),
            json.dumps({"maxReceiveCount": 5, "deadLetterTargetArn": "a"}),
            True,
        ),
        (
            "RedrivePolicy",
            json.dumps({"deadLetterTargetArn": "a", "maxReceiveCount": 5}),
            json.dumps({"deadLetterTargetArn": "a", "maxReceiveCount": 6}),
            False,
        ),
        ("RedrivePolicy", None, "", True),
        (
            "RedrivePolicy",
            json.dumps({"deadLetterTargetArn": "a", "maxReceiveCount": 5}),
            "",
            False,
        ),
        ("DelaySeconds", None, "5", False),
    ],
)
def test_same_attribute(name, current, desired, same):
    assert same_attribute(name, current, desired) is same
