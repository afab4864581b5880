"""Validation rules: each one, all problems at once, and the cross-resource queue rule."""

from __future__ import annotations

import copy

import pytest
from kube_taskqueue_operator.resource.validation import (
    InvalidDocument,
    parse,
    validate_against,
    validate_all,
    validate_one,
)


def problems_of(manifest) -> list[str]:
    return [problem.message for problem in validate_one(parse(manifest))]


def test_the_example_is_valid(manifest):
    assert problems_of(manifest) == []


def test_a_processor_naming_an_unknown_task(manifest):
    manifest["spec"]["processors"][1]["tasks"].append("ghost:job")
    assert problems_of(manifest) == [
        "processor 'examples' names unknown task 'ghost:job' (declared tasks: cleanup:job, "
        "example:job, partitions_maintenance:job)"
    ]


def test_a_task_in_no_processor(manifest):
    manifest["spec"]["tasks"].append({"name": "orphan:job", "queue": "lonely"})
    manifest["spec"]["queues"].append({"name": "lonely"})
    assert problems_of(manifest) == ["task 'orphan:job' is assigned to no processor"]


def test_a_task_in_two_processors_and_the_split_it_makes(manifest):
    manifest["spec"]["processors"][1]["tasks"].append("cleanup:job")
    assert problems_of(manifest) == [
        "task 'cleanup:job' is assigned to more than one processor: main, examples",
        "queue 'shared' is split across processors (examples: cleanup:job; main: cleanup:job, "
        "partitions_maintenance:job); all tasks of a queue must belong to one processor, or "
        "messages are read by the wrong one and end in the dead-letter queue",
    ]


def test_a_queue_split_between_processors_names_queue_tasks_and_processors(manifest):
    spec = manifest["spec"]
    spec["processors"][0]["tasks"] = ["partitions_maintenance:job"]
    spec["processors"][1]["tasks"] = ["example:job", "cleanup:job"]
    [problem] = problems_of(manifest)
    assert problem.startswith(
        "queue 'shared' is split across processors (examples: cleanup:job; "
        "main: partitions_maintenance:job)"
    )


def test_a_task_on_an_undeclared_queue(manifest):
    manifest["spec"]["tasks"][2]["queue"] = "nowhere"
    assert problems_of(manifest) == [
        "task 'example:job' uses queue 'nowhere', which is not declared in spec.queues "
        "(declared: example_queue, shared)"
    ]


def test_duplicate_names(manifest):
    spec = manifest["spec"]
    spec["queues"].append(copy.deepcopy(spec["queues"][0]))
    spec["processors"].append({"name": "main", "tasks": ["example:job"]})
    problems = problems_of(manifest)
    assert "queue 'shared' is declared 2 times" in problems
    assert "processor 'main' is declared 2 times" in problems


def test_invalid_cron_and_payload_without_schedule(manifest):
    tasks = manifest["spec"]["tasks"]
    tasks[0]["schedule"] = "61 * * * *"
    tasks[1]["payload"] = {"a": 1}
    assert problems_of(manifest) == [
        "task 'partitions_maintenance:job' has an invalid cron schedule '61 * * * *': "
        "minute field '61' is out of range 0-59",
        "task 'cleanup:job' has a payload but no schedule to send it on",
    ]


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        (
            "0 0 * * * *",
            "it has six fields, but Kubernetes CronJobs have no seconds field: use five "
            "(minute hour day-of-month month day-of-week), e.g. '0 * * * *'",
        ),
        (
            "whenever",
            "it has 1 field; expected five (minute hour day-of-month month day-of-week), "
            "e.g. '0 * * * *'",
        ),
        ("0 0 L * *", "day-of-month field 'L' is not a number, a range such as 1-5, or *"),
        ("0 0 * * 7", "day-of-week field '7' is out of range 0-6 or sun-sat"),
        ("*/0 * * * *", "minute field '*/0': the step must be a positive number"),
        ("0,75 * * * *", "minute field '0,75': '75' is out of range 0-59"),
        ("30 18-9 * * *", "hour field '18-9' starts after it ends"),
        (
            "TZ=Europe/Paris 0 9 * * *",
            "a time zone (TZ= or CRON_TZ=) cannot be part of a Kubernetes CronJob schedule; "
            "schedules run in the time zone of the cluster's controller manager",
        ),
    ],
)
def test_a_bad_schedule_says_which_field_is_wrong(manifest, schedule, why):
    manifest["spec"]["tasks"][0]["schedule"] = schedule
    assert problems_of(manifest) == [
        f"task 'partitions_maintenance:job' has an invalid cron schedule {schedule!r}: {why}"
    ]


def test_scale_to_zero_is_refused_unless_another_autoscaler_owns_the_replicas(manifest):
    manifest["spec"]["processors"][1]["autoscaling"] = {"minReplicas": 0, "maxReplicas": 3}
    assert problems_of(manifest) == [
        "processor 'examples': autoscaling.minReplicas is 0: scale-to-zero needs queue-driven "
        "autoscaling (set autoscaling.queueLength: KEDA scales on queue depth, to 0 and back); "
        "the CPU HorizontalPodAutoscaler keeps at least 1 pod. Set minReplicas to 1 or more, "
        "queueLength, or external: true when another autoscaler owns the replica count"
    ]
    manifest["spec"]["processors"][1]["autoscaling"]["external"] = True
    assert problems_of(manifest) == []


def test_env_names_the_operator_sets_or_that_repeat_are_refused(manifest):
    """Server-side apply refuses a container with two env entries of one name."""
    manifest["spec"]["processors"][0]["env"] = [
        {"name": "AWS_REGION", "value": "us-east-1"},
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "inline"},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "TASKQUEUE_JOB_NAME", "value": "x"},
    ]
    assert problems_of(manifest) == [
        "processor 'main': env variable 'LOG_LEVEL' is set 2 times",
        "processor 'main': env variable 'AWS_REGION' is set by the operator from "
        "spec.sqs.region; set the region there",
        "processor 'main': env variable 'AWS_SECRET_ACCESS_KEY' is a credential; put it in "
        "the Secret named by spec.sqs.credentialsSecret, never inline",
        "processor 'main': env variable 'TASKQUEUE_JOB_NAME' is set by the operator "
        "(scheduled tasks); use another name",
    ]


@pytest.mark.parametrize(
    "name",
    ["Accounts", "accounts_v2", "-accounts", "a" * 254, "accounts\n", "accoünts", "a.b", "a" * 64],
)
def test_a_name_the_api_server_or_a_label_refuses_is_refused(manifest, name):
    manifest["metadata"]["name"] = name
    problems = [p for p in problems_of(manifest) if p.startswith("metadata.name")]
    assert problems == [
        f"metadata.name {name!r} is not a DNS label: at most 63 lower-case letters, digits and "
        "'-', starting and ending with a letter or digit (it is a label value and begins the "
        "name of every object the TaskQueue makes)"
    ]


def test_every_problem_is_reported_at_once(manifest):
    spec = manifest["spec"]
    spec["tasks"][0]["schedule"] = "bad"
    spec["tasks"][2]["queue"] = "nowhere"
    spec["processors"][1]["tasks"].append("ghost:job")
    assert len(problems_of(manifest)) == 3


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda s: s["queues"][0].update(maxBatchSize=11),
            "spec.queues.0.maxBatchSize: Input should be less than or equal to 10",
        ),
        (
            lambda s: s["queues"][0].update(pollInterval="soon"),
            "spec.queues.0.pollInterval: Input should be a valid integer",
        ),
        (
            lambda s: s["processors"][0].update(name="Main_1"),
            "spec.processors.0.name: String should match pattern",
        ),
        (lambda s: s.update(replicas=3), "spec.replicas: Extra inputs are not permitted"),
        (
            lambda s: s["sqs"].update(region="EU West"),
            "spec.sqs.region: String should match pattern",
        ),
        (
            lambda s: s["tasks"][0].update(payload=[1, 2]),
            "spec.tasks.0.payload: expected a mapping, got a list",
        ),
        (
            lambda s: s.update(sqs=None),
            "spec.sqs: expected a mapping, got an empty value (null)",
        ),
        (
            lambda s: s.update(deletionPolicy="Forget"),
            "spec.deletionPolicy: Input should be 'Retain' or 'Delete'",
        ),
    ],
)
def test_schema_problems_name_the_field(manifest, change, expected):
    change(manifest["spec"])
    with pytest.raises(InvalidDocument) as error:
        parse(manifest)
    assert any(str(p).startswith("billing/accounts: " + expected) for p in error.value.problems), (
        error.value
    )


def test_two_resources_may_not_share_a_physical_queue(manifest):
    first = parse(manifest)
    other = copy.deepcopy(manifest)
    other["metadata"]["name"] = "ledger"
    second = parse(other)
    problems = validate_all([first, second])
    assert {p.resource for p in problems} == {"billing/accounts", "billing/ledger"}
    assert (
        "SQS queue 'accounts-dev-shared' (region eu-west-1, endpoint http://sqs.example.net:8771) "
        "is also declared by TaskQueue billing/ledger; a physical queue belongs to one resource"
    ) in [p.message for p in problems if p.resource == "billing/accounts"]
    # Dead-letter queues are physical queues too.
    assert any("'accounts-dev-shared-dlq'" in p.message for p in problems)
    # Only the checked resource's problems, when checked against the cluster's others.
    assert {p.resource for p in validate_against(second, [first])} == {"billing/ledger"}


def test_files_spelling_one_endpoint_two_ways_still_clash(manifest):
    # As the claim index in the cluster: AWS's URL, with a trailing slash, and no endpoint
    # at all are one service.
    manifest["spec"]["sqs"].pop("endpoint")
    first = parse(manifest)
    other = copy.deepcopy(manifest)
    other["metadata"]["name"] = "ledger"
    other["spec"]["sqs"]["endpoint"] = "https://sqs.eu-west-1.amazonaws.com/"
    problems = validate_all([first, parse(other)])
    assert any(
        "SQS queue 'accounts-dev-shared' (region eu-west-1, endpoint aws) is also declared by "
        "TaskQueue billing/ledger" in p.message
        for p in problems
    ), problems


def test_another_prefix_region_or_endpoint_is_another_queue(manifest):
    first = parse(manifest)
    for field, value in (
        ("queuePrefix", "accounts-prod-"),
        ("region", "us-east-1"),
        ("endpoint", "http://other:1"),
    ):
        other = copy.deepcopy(manifest)
        other["metadata"]["name"] = "ledger"
        other["spec"]["sqs"][field] = value
        assert validate_all([first, parse(other)]) == [], field


def test_an_overlong_deployment_name_is_refused(manifest):
    manifest["metadata"]["name"] = "a" * 40
    manifest["spec"]["processors"][1]["name"] = "b" * 30
    assert problems_of(manifest) == [
        f"processor {'b' * 30!r} (spec.processors.1.name): the Deployment name "
        f"{'a' * 40 + '-' + 'b' * 30!r} (metadata.name-processor) is 71 characters, longer "
        "than 63"
    ]


def test_region_comes_from_the_operator_default_when_the_spec_has_none(manifest):
    from kube_taskqueue_operator.resource.defaults import SqsDefaults, with_defaults

    del manifest["spec"]["sqs"]["region"]
    del manifest["spec"]["sqs"]["queuePrefix"]
    assert problems_of(manifest) == [
        "spec.sqs.region is not set and there is no default region (the operator's "
        "TASKQUEUE_DEFAULT_REGION; --default-region for kube-taskqueue validate and render)"
    ]
    resolved = with_defaults(
        parse(manifest), SqsDefaults(region="eu-north-1", queue_prefix="prod-")
    )
    assert validate_one(resolved) == []
    assert resolved.spec.sqs.region == "eu-north-1"
    assert resolved.spec.sqs.queue_prefix == "prod-"
    # The spec's own values win over the defaults.
    kept = with_defaults(resolved, SqsDefaults(region="us-west-2", queue_prefix="dev-"))
    assert (kept.spec.sqs.region, kept.spec.sqs.queue_prefix) == ("eu-north-1", "prod-")
